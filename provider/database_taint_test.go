package provider

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

// A tainted database (one that failed to start is tainted by its create)
// is replaced by the next apply: the check at plan time that its name is
// free must not count the database that the replacement deletes first.
func TestAccDatabaseResource_taintedIsReplaced(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	config := e.providerConfig() + fmt.Sprintf(`
resource "redis_database" "test" {
  name        = %q
  memory_size = 67108864
}
`, name)
	var first string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: func(s *terraform.State) error {
					first = s.RootModule().Resources["redis_database.test"].Primary.ID
					return nil
				},
			},
			{
				Config: config,
				Taint:  []string{"redis_database.test"},
				Check: func(s *terraform.State) error {
					if id := s.RootModule().Resources["redis_database.test"].Primary.ID; id == first {
						return fmt.Errorf("the tainted database %s was not replaced", id)
					}
					return nil
				},
			},
		},
	})
}
