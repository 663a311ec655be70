package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFrameworkLogLevel(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
		set  bool
	}{
		{map[string]string{}, "", false},
		{map[string]string{"TF_LOG": "info"}, "", false},
		{map[string]string{"TF_LOG": "debug"}, "INFO", true},
		{map[string]string{"TF_LOG": "TRACE"}, "INFO", true},
		{map[string]string{"TF_LOG": "json"}, "INFO", true},
		{map[string]string{"TF_LOG_PROVIDER": "trace"}, "INFO", true},
		{map[string]string{"TF_LOG_SDK": "debug"}, "INFO", true},
		{map[string]string{"TF_LOG": "trace", FrameworkLogEnv: "trace"}, "", false},
		// Terraform takes a value that is not a level for TRACE.
		{map[string]string{"TF_LOG": "1"}, "INFO", true},
		{map[string]string{"TF_LOG": "yes"}, "INFO", true},
		{map[string]string{"TF_LOG": "off"}, "", false},
		{map[string]string{"TF_LOG": "warn", "TF_LOG_PROVIDER": "error"}, "", false},
	} {
		got, set := FrameworkLogLevel(func(k string) string { return tc.env[k] })
		assert.Equal(t, tc.want, got, "%v", tc.env)
		assert.Equal(t, tc.set, set, "%v", tc.env)
	}
}
