package redistest

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A cluster-enabled server's bus takes a port of the test's window, not
// Redis's default (its port + 10000, outside REDIS_REPLICAD_TEST_PORTS,
// where another user's server may listen and make the start fail).
func TestClusterEnabledServerBusIsInTheWindow(t *testing.T) {
	s := Start(t, "--cluster-enabled", "yes")
	v, err := s.Client().ConfigGet(Ctx(t), "cluster-port").Result()
	require.NoError(t, err)
	bus, err := strconv.Atoi(v["cluster-port"])
	require.NoError(t, err)
	lo, count := freeWindow()
	assert.GreaterOrEqual(t, bus, lo, "bus port %d", bus)
	assert.Less(t, bus, lo+count, "bus port %d", bus)
}
