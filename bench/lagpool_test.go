package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPoolLagWeighsEveryProbeAndCommand(t *testing.T) {
	quiet := LagSide{Probes: 100, cmds: 1e6, serviceCPU: 1, redisCPU: 3, P99: 2, ServiceCPUPerM: 1, RedisCPUPerM: 3}
	for i := range 100 {
		quiet.lags = append(quiet.lags, 1+float64(i)/100) // 1.00 to 1.99 ms
	}
	// A run with a stall: 3 probes of 100 late, and dearer commands.
	stall := LagSide{Probes: 100, Missing: 1, cmds: 1e6, serviceCPU: 2, redisCPU: 4, P99: 40, ServiceCPUPerM: 2, RedisCPUPerM: 4}
	for i := range 96 {
		stall.lags = append(stall.lags, 1+float64(i)/100)
	}
	stall.lags = append(stall.lags, 30, 35, 40)

	p := poolLag([]LagSide{quiet, stall})
	require.Len(t, p.lags, 199)
	assert.Equal(t, 2, p.Runs)
	assert.Equal(t, 200, p.Probes)
	assert.Equal(t, 1, p.Missing)
	// p99 of 199 probes is the 198th smallest (index 197): the stall's 35 ms.
	assert.Equal(t, 35.0, p.P99)
	assert.Equal(t, 40.0, p.Max)
	assert.InDelta(t, 1.5, p.ServiceCPUPerM, 1e-9)
	assert.InDelta(t, 3.5, p.RedisCPUPerM, 1e-9)
	assert.Equal(t, []float64{2, 40}, p.RunP99)
	assert.Equal(t, []float64{4, 6}, p.RunCPUPerM)
}

func TestEachRunListsRunsOnlyWhenPooled(t *testing.T) {
	assert.Equal(t, "", eachRun("p99", []float64{3}, "%.1f ms"))
	assert.Equal(t, " (each run: p99 3.0 ms, 4.5 ms)", eachRun("p99", []float64{3, 4.5}, "%.1f ms"))
	assert.Equal(t, "", lagRuns(LagSide{Runs: 1}, 15))
	assert.Equal(t, ", 3 runs of 15 s of each side, alternating, pooled", lagRuns(LagSide{Runs: 3}, 15))
}

func TestParseCPULine(t *testing.T) {
	busy, total, err := parseCPULine("cpu  100 5 50 800 40 1 2 0 0 0\ncpu0 1 2 3 4 5\n")
	require.NoError(t, err)
	assert.Equal(t, uint64(100+5+50+1+2), busy)
	assert.Equal(t, uint64(998), total)
	_, _, err = parseCPULine("intr 1 2 3")
	assert.Error(t, err)
}
