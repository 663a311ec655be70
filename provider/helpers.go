package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
	"github.com/replicad/terraform-provider-redis/internal/tlspin"
)

// clientFromProviderData returns the client that the provider's Configure
// made. It is nil, without a diagnostic, before the provider is configured
// (for example while Terraform validates a configuration).
func clientFromProviderData(data any, diags *diag.Diagnostics) *client.Client {
	if data == nil {
		return nil
	}
	c, ok := data.(*client.Client)
	if !ok {
		diags.AddError("Unexpected provider data",
			fmt.Sprintf("Expected a *client.Client, got %T. This is a bug in the provider: please report it.", data))
		return nil
	}
	return c
}

// pemCertificate validates that a string is one PEM certificate.
func pemCertificate() validator.String { return pemCertificateValidator{} }

type pemCertificateValidator struct{}

func (pemCertificateValidator) Description(context.Context) string {
	return "must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)"
}

func (v pemCertificateValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (v pemCertificateValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := checkPEMCertificate(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid certificate", err.Error())
	}
}

// pemCertificates validates that every element of a set of strings is one
// PEM certificate. Its diagnostics are attached to the set, not to the
// element: the framework names an element of a set by its value, which
// Terraform logs, and a private key given by mistake (private_key_pem for
// cert_pem) would be written out.
func pemCertificates() validator.Set { return pemCertificatesValidator{} }

type pemCertificatesValidator struct{}

func (pemCertificatesValidator) Description(context.Context) string {
	return "each element must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)"
}

func (v pemCertificatesValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (pemCertificatesValidator) ValidateSet(ctx context.Context, req validator.SetRequest, resp *validator.SetResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	for _, e := range req.ConfigValue.Elements() {
		s, ok := e.(types.String)
		if ok && s.IsNull() {
			resp.Diagnostics.AddAttributeError(req.Path, "Invalid certificate",
				fmt.Sprintf("An element of %s is null: every element must be a PEM certificate.", req.Path))
			continue
		}
		if !ok || s.IsUnknown() {
			continue
		}
		if err := checkPEMCertificate(s.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(req.Path, "Invalid certificate",
				fmt.Sprintf("An element of %s is not a certificate: %s.", req.Path, err))
		}
	}
}

// checkPEMCertificate reports why text is not one PEM certificate.
func checkPEMCertificate(text string) error {
	_, err := tlspin.ParseCertificate(text)
	return err
}

// durationString validates a Go duration such as "90s" or "5m", not negative.
func durationString() validator.String { return durationValidator{} }

type durationValidator struct{}

func (durationValidator) Description(context.Context) string {
	return `must be a duration such as "90s" or "5m", not negative`
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v durationValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	d, err := time.ParseDuration(req.ConfigValue.ValueString())
	if err != nil || d < 0 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration",
			"The value must be a duration such as \"90s\" or \"5m\" (units: s, m, h), not negative "+notShown+".")
	}
}

// The rules below are the service's (service/controller), checked at plan
// time with the same words, so that a configuration the service refuses
// fails at plan, not halfway through an apply.
const (
	memorySizeRuleText = "it is in bytes, from 4194304 (4 MiB) to 1099511627776 (1 TiB)"
)

// memorySize validates memory_size: 4 MiB to 1 TiB.
func memorySize() validator.Int64 { return memorySizeValidator{} }

type memorySizeValidator struct{}

func (memorySizeValidator) Description(context.Context) string {
	return "must be from 4194304 (4 MiB) to 1099511627776 (1 TiB) bytes"
}

func (v memorySizeValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (memorySizeValidator) ValidateInt64(_ context.Context, req validator.Int64Request, resp *validator.Int64Response) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if n := req.ConfigValue.ValueInt64(); n < api.MinMemorySize || n > api.MaxMemorySize {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid memory_size",
			fmt.Sprintf("memory_size %d is out of range: %s.", n, memorySizeRuleText))
	}
}

// databasePassword validates the password of a database as the service
// does: 8 to 128 characters, printable (spaces included). The messages never
// show the password, nor its length.
func databasePassword() validator.String { return databasePasswordValidator{} }

type databasePasswordValidator struct{}

func (databasePasswordValidator) Description(context.Context) string {
	return "must be 8 to 128 printable characters (spaces included)"
}

func (v databasePasswordValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (databasePasswordValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := api.CheckPassword(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid password", fmt.Sprintf("The %s %s.", req.Path, err))
	}
}

// checkTimeouts refuses a negative duration in the timeouts block of a
// configuration: the timeouts package checks the format only, and an apply
// given "-1s" would create the object and then fail its wait at once.
func checkTimeouts(ctx context.Context, config tfsdk.Config, diags *diag.Diagnostics) {
	var block timeouts.Value
	if config.GetAttribute(ctx, path.Root("timeouts"), &block).HasError() || block.IsNull() || block.IsUnknown() {
		return
	}
	for name, v := range block.Attributes() {
		s, ok := v.(types.String)
		if !ok || s.IsNull() || s.IsUnknown() {
			continue
		}
		if d, err := time.ParseDuration(s.ValueString()); err == nil && d <= 0 {
			diags.AddAttributeError(path.Root("timeouts").AtName(name), "Invalid timeout",
				fmt.Sprintf("The %s timeout must be a positive duration (such as \"10m\"), not %q.", name, s.ValueString()))
		}
	}
}
