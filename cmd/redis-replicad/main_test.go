package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServeHelpListsEnvironmentVariables(t *testing.T) {
	var out bytes.Buffer
	_, _, err := parseServe([]string{"-h"}, &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	names := []string{"data-dir", "listen", "admin-user", "admin-password", "viewer-user", "viewer-password", "log-format", "log-level", "tls-cert", "port-range"}
	for _, n := range names {
		assert.Contains(t, out.String(), "--"+n+"  [$"+envName(n)+"]", "serve -h lists %s with its environment variable", n)
	}
}

func TestLogFormat(t *testing.T) {
	t.Setenv("REDIS_REPLICAD_LOG_FORMAT", "json")
	_, lo, err := parseServe([]string{"--data-dir", t.TempDir()}, &bytes.Buffer{})
	require.NoError(t, err)
	var out bytes.Buffer
	lo.logger(&out).Info("database started", "uid", 1)
	var line map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &line), "a JSON log line: %s", out.String())
	assert.Equal(t, "database started", line["msg"])
	assert.EqualValues(t, 1, line["uid"])

	_, _, err = parseServe([]string{"--data-dir", t.TempDir(), "--log-format", "xml"}, &bytes.Buffer{})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "text or json"), err.Error())
}
