package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

func TestAccClusterDataSource(t *testing.T) {
	e := testAccStart(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: e.providerConfig() + `data "redis_cluster" "this" {}`,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("data.redis_cluster.this", "name", "test"),
					resource.TestMatchResourceAttr("data.redis_cluster.this", "version", regexp.MustCompile(`.+`)),
					resource.TestCheckResourceAttr("data.redis_cluster.this", "ca_cert", e.inst.CACert),
					resource.TestCheckResourceAttrSet("data.redis_cluster.this", "proxy_cert"),
					resource.TestCheckResourceAttrSet("data.redis_cluster.this", "syncer_cert"),
				),
			},
		},
	})
}
