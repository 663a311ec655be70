package databases

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

func TestSlotRangeCoversEverySlotOnce(t *testing.T) {
	for n := 1; n <= 64; n++ {
		next := 0
		for s := range n {
			lo, hi := SlotRange(s, n)
			assert.Equal(t, next, lo, "shard %d of %d starts where the previous ended", s, n)
			assert.LessOrEqual(t, hi-lo+1-16384/n, 1, "shard %d of %d is even", s, n)
			next = hi + 1
		}
		assert.Equal(t, 16384, next, "%d shards cover every slot", n)
	}
	lo, hi := SlotRange(1, 3)
	assert.Equal(t, [2]int{5462, 10922}, [2]int{lo, hi})
}

func TestNodeKeyRoundTrips(t *testing.T) {
	for _, uid := range []int{1, 2, 77, 100000} {
		for i := range maxNodes {
			k := nodeKey(uid, i)
			u, n := splitKey(k)
			assert.Equal(t, [2]int{uid, i}, [2]int{u, n})
			if i > 0 {
				assert.Negative(t, k, "node keys never collide with a uid")
			}
		}
	}
}

func TestNodesStatusIsTheWorst(t *testing.T) {
	st, _ := nodesStatus([]string{api.StatusActive, api.StatusActive}, []float64{0, 0})
	assert.Equal(t, api.StatusActive, st)
	st, perc := nodesStatus([]string{api.StatusActive, api.StatusLoading, api.StatusLoading}, []float64{0, 40, 70})
	assert.Equal(t, api.StatusLoading, st)
	assert.Equal(t, 40.0, perc)
	st, _ = nodesStatus([]string{api.StatusLoading, api.StatusFailed}, []float64{10, 0})
	assert.Equal(t, api.StatusFailed, st)
}
