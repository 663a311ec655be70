package provider

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

func TestAccDatabaseDataSource(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	config := e.providerConfig() + testAccDatabaseConfig(name, 64<<20, "") + `
data "redis_database" "by_id" {
  id = redis_database.test.id
}

data "redis_database" "by_name" {
  name = redis_database.test.name
}

# Names are unique regardless of case: any case finds the database.
data "redis_database" "by_upper_name" {
  name = upper(redis_database.test.name)
}
`
	var same []resource.TestCheckFunc
	for _, ds := range []string{"data.redis_database.by_id", "data.redis_database.by_name", "data.redis_database.by_upper_name"} {
		for _, attr := range []string{"id", "name", "memory_size", "port", "password", "endpoint", "status", "tls_mode", "replication_endpoint"} {
			same = append(same, resource.TestCheckResourceAttrPair(ds, attr, testAccDatabaseResource, attr))
		}
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(append(same,
					resource.TestCheckResourceAttr("data.redis_database.by_name", "status", api.StatusActive),
					resource.TestCheckResourceAttr("data.redis_database.by_id", "memory_size", strconv.Itoa(64<<20)),
					resource.TestCheckResourceAttr("data.redis_database.by_id", "tls_mode", api.TLSDisabled),
					resource.TestCheckResourceAttr("data.redis_database.by_id", "client_certificates.#", "0"),
					resource.TestMatchResourceAttr("data.redis_database.by_id", "replication_endpoint", regexp.MustCompile(`^127\.0\.0\.1:[0-9]+$`)),
				)...),
			},
		},
	})
}

func TestAccDatabaseDataSource_errors(t *testing.T) {
	e := testAccStart(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      e.providerConfig() + `data "redis_database" "x" {}`,
				ExpectError: regexp.MustCompile(`(?s)Missing Attribute Configuration.*Exactly one of these attributes must be configured: \[id,name\]`),
			},
			{
				Config: e.providerConfig() + `
data "redis_database" "x" {
  id   = "1"
  name = "a"
}`,
				ExpectError: regexp.MustCompile(`(?s)Invalid Attribute Combination`),
			},
			{
				Config:      e.providerConfig() + `data "redis_database" "x" { id = "abc" }`,
				ExpectError: regexp.MustCompile(`must be a database uid`),
			},
			{
				Config:      e.providerConfig() + `data "redis_database" "x" { id = "4242" }`,
				ExpectError: regexp.MustCompile(`(?s)Could not read the database 4242.*HTTP 404`),
			},
			{
				Config:      e.providerConfig() + fmt.Sprintf(`data "redis_database" "x" { name = %s }`, hclString("no-such-db")),
				ExpectError: regexp.MustCompile(`no database is named "no-such-db"`),
			},
		},
	})
}
