//go:build generate

// Package tools pins the tools that generate the provider's documentation
// and build its releases.
// It is a module of its own so that their dependencies stay out of the
// provider's go.mod. Run `go generate ./...` in this directory: go generate
// sets the "generate" build tag that this file needs.
package tools

import (
	// goreleaser builds the release archives (make release-dry-run).
	_ "github.com/goreleaser/goreleaser/v2"
	_ "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs"
)

// Format the examples, which the documentation embeds.
//go:generate terraform fmt -recursive ../examples/

// Generate docs/ from the provider's schema, templates/ and examples/.
//go:generate go run github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs generate --provider-dir .. --provider-name redis
