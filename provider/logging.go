package provider

import "strings"

// FrameworkLogEnv is the variable that sets the log level of
// terraform-plugin-framework's own logs in the provider process.
const FrameworkLogEnv = "TF_LOG_SDK_FRAMEWORK"

// FrameworkLogLevel returns the level that FrameworkLogEnv must be set to,
// and whether it must be set, given the provider's environment.
//
// At DEBUG and TRACE, the framework names every element of a set by its
// value in the attribute paths it logs, and `source_uris` is a set of URLs
// with passwords. So when DEBUG or TRACE is asked for through TF_LOG,
// TF_LOG_PROVIDER or TF_LOG_SDK, the framework's own logs are capped at INFO
// (it logs nothing at INFO; its errors still show); the provider's own logs
// keep the level asked for. Setting TF_LOG_SDK_FRAMEWORK explicitly
// overrides the cap, at the price of passwords in the framework's logs.
func FrameworkLogLevel(getenv func(string) string) (string, bool) {
	if getenv(FrameworkLogEnv) != "" {
		return "", false
	}
	for _, v := range []string{"TF_LOG", "TF_LOG_PROVIDER", "TF_LOG_SDK"} {
		// Terraform takes any value that is not a level (TF_LOG=1, say) for
		// TRACE, and so do the framework's loggers: only the levels that log
		// nothing of the framework's DEBUG and TRACE lines are left alone.
		switch strings.ToUpper(strings.TrimSpace(getenv(v))) {
		case "", "INFO", "WARN", "ERROR", "OFF":
		default:
			return "INFO", true
		}
	}
	return "", false
}
