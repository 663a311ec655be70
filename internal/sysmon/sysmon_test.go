package sysmon

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWithSysmonAwake(t *testing.T) {
	env, changed := WithAwake([]string{"PATH=/bin", "HOME=/root"})
	assert.True(t, changed)
	assert.Equal(t, []string{"PATH=/bin", "HOME=/root", "GODEBUG=" + Setting}, env)

	env, changed = WithAwake([]string{"GODEBUG=gctrace=1", "PATH=/bin"})
	assert.True(t, changed)
	assert.Equal(t, []string{"PATH=/bin", "GODEBUG=gctrace=1," + Setting}, env, "the operator's settings are kept")

	// Already there, or the operator's own schedtrace (0 turns it off):
	// nothing to do, so no second exec.
	for _, g := range []string{"GODEBUG=" + Setting, "GODEBUG=gctrace=1, schedtrace=0"} {
		in := []string{"PATH=/bin", g}
		env, changed = WithAwake(in)
		assert.False(t, changed, g)
		assert.Equal(t, in, env, g)
	}
}
