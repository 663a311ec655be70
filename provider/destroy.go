package provider

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"

	"github.com/replicad/terraform-provider-redis/internal/client"
)

// terraform destroy (and plan or apply -destroy) first plans the
// configuration as an apply would, to refresh the state, and stops on any
// error of that plan; the provider is not told that a destroy follows. The
// checks that only matter to a create or an update (a source URL without a
// source, a database that no longer exists, a resharding) must not stop a
// destroy, so the provider asks the command line of the terraform process
// that started it. Where that cannot be read (not Linux, or a provider
// served in a test process), the checks stay as they are.

// parentCommandLine returns the arguments of the process that started this
// one, or nil when they cannot be read.
func parentCommandLine() []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", os.Getppid()))
	if err != nil || len(raw) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
}

// destroyCommand reports whether args, a terraform (or OpenTofu) command
// line, destroys: `destroy`, or `plan` or `apply` with -destroy. Options
// before the subcommand (-chdir=DIR) are skipped.
func destroyCommand(args []string) bool {
	if len(args) < 2 {
		return false
	}
	if base := filepath.Base(args[0]); !strings.Contains(base, "terraform") && !strings.Contains(base, "tofu") {
		return false
	}
	for i, a := range args[1:] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		switch a {
		case "destroy":
			return true
		case "plan", "apply":
			for _, o := range args[i+2:] {
				switch strings.TrimPrefix(o, "-") {
				case "-destroy", "destroy", "-destroy=true", "destroy=true":
					return true
				}
			}
		}
		return false
	}
	return false
}

// missingWhileDestroying reports, as a warning, a database that a data
// source reads and that no longer exists, while terraform destroys: the
// resources that used it are destroyed all the same. what says which.
func missingWhileDestroying(what string, diags *diag.Diagnostics) {
	diags.AddWarning(what, what+": this terraform command destroys, so the data source reads as empty "+
		"(\"\", 0), and the resources that use it are destroyed all the same (a plan or an apply fails on it).")
}

// withoutValidators returns attrs with no validator, nested attributes
// included: while terraform destroys, a value that a create or an update
// would refuse (read empty from a data source whose database is gone, say)
// must not stop the destroy. Terraform's own checks (required arguments,
// types) stay.
func withoutValidators(attrs map[string]rschema.Attribute) map[string]rschema.Attribute {
	out := make(map[string]rschema.Attribute, len(attrs))
	for name, a := range attrs {
		switch v := a.(type) {
		case rschema.StringAttribute:
			v.Validators = nil
			a = v
		case rschema.BoolAttribute:
			v.Validators = nil
			a = v
		case rschema.Int64Attribute:
			v.Validators = nil
			a = v
		case rschema.ListAttribute:
			v.Validators = nil
			a = v
		case rschema.MapAttribute:
			v.Validators = nil
			a = v
		case rschema.SetAttribute:
			v.Validators = nil
			a = v
		case rschema.ListNestedAttribute:
			v.Validators, v.NestedObject.Validators = nil, nil
			v.NestedObject.Attributes = withoutValidators(v.NestedObject.Attributes)
			a = v
		case rschema.MapNestedAttribute:
			v.Validators, v.NestedObject.Validators = nil, nil
			v.NestedObject.Attributes = withoutValidators(v.NestedObject.Attributes)
			a = v
		case rschema.SetNestedAttribute:
			v.Validators, v.NestedObject.Validators = nil, nil
			v.NestedObject.Attributes = withoutValidators(v.NestedObject.Attributes)
			a = v
		}
		out[name] = a
	}
	return out
}

// sourceURLMissing says, with a warning, whether the database databaseID
// whose source URL a data source or an ephemeral resource reads no longer
// exists; for use while destroying only.
func sourceURLMissing(ctx context.Context, c *client.Client, databaseID string, diags *diag.Diagnostics) bool {
	uid, err := parseDatabaseID(databaseID)
	if err != nil {
		return false
	}
	if _, err := readSourceURL(ctx, c, uid); !client.IsNotFound(err) {
		return false
	}
	missingWhileDestroying(fmt.Sprintf("The database %d, whose source URL is read, does not exist", uid), diags)
	return true
}
