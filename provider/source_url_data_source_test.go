package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

// TestAccSourceURLDataSource reads the source URL that a
// redis_source_url_password made, without regenerating it.
func TestAccSourceURLDataSource(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	config := e.providerConfig() + testAccDatabaseConfig(name, 64<<20, "") + `
resource "redis_source_url_password" "test" {
  database_id = redis_database.test.id
}

data "redis_source_url" "test" {
  database_id = redis_source_url_password.test.database_id
}
`
	const ds, pw = "data.redis_source_url.test", "redis_source_url_password.test"
	var first string

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrPair(ds, "uri", pw, "source_url"),
					resource.TestCheckResourceAttrPair(ds, "address", pw, "address"),
					resource.TestCheckResourceAttrPair(ds, "address", testAccDatabaseResource, "replication_endpoint"),
					resource.TestMatchResourceAttr(ds, "uri", regexp.MustCompile(`^redis://admin:[^@]{16,}@127\.0\.0\.1:[0-9]+$`)),
					func(s *terraform.State) error {
						first = s.RootModule().Resources[pw].Primary.Attributes["source_url"]
						return nil
					},
				),
			},
			// Reading it again changes nothing.
			{
				Config: config,
				Check: func(s *terraform.State) error {
					for _, n := range []string{ds, pw} {
						a := s.RootModule().Resources[n].Primary.Attributes
						got := a["uri"] + a["source_url"]
						if got != first {
							return fmt.Errorf("%s changed its source URL", n)
						}
					}
					return nil
				},
			},
			{
				Config:      e.providerConfig() + `data "redis_source_url" "none" { database_id = "999" }`,
				ExpectError: regexp.MustCompile(`Could not read the source URL of database 999`),
			},
		},
	})
}
