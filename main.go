// Command terraform-provider-redis is the Terraform provider of redis-replicad.
package main

import (
	"context"
	"flag"
	"log"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/replicad/terraform-provider-redis/provider"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "start the provider in a mode for debuggers such as delve")
	flag.Parse()

	// Before the framework reads it: see FrameworkLogLevel.
	if level, ok := provider.FrameworkLogLevel(os.Getenv); ok {
		if err := os.Setenv(provider.FrameworkLogEnv, level); err != nil {
			log.Fatal(err)
		}
	}

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: provider.Address,
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
