package app

import (
	"context"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/controller"
	"github.com/replicad/terraform-provider-redis/service/telemetry"
)

// namedBackend is the controller as the API sees it, keeping the names that
// metrics and logs add to uids up to date with every change.
type namedBackend struct {
	*controller.Controller
	names *telemetry.Names
}

func (b *namedBackend) CreateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.Database, error) {
	d, err := b.Controller.CreateDatabase(ctx, req)
	if err == nil {
		b.names.Set(d.UID, d.Name)
	}
	return d, err
}

func (b *namedBackend) UpdateDatabase(ctx context.Context, uid int, req api.UpdateDatabaseRequest) (api.Database, error) {
	d, err := b.Controller.UpdateDatabase(ctx, uid, req)
	if err == nil {
		b.names.Set(d.UID, d.Name)
	}
	return d, err
}

func (b *namedBackend) DeleteDatabase(ctx context.Context, uid int) error {
	err := b.Controller.DeleteDatabase(ctx, uid)
	if err == nil {
		b.names.Delete(uid)
	}
	return err
}

// memoryUsed is the used_memory of database uid: of its redis-server, or
// the sum over the masters of a sharded database, as the databases'
// watchers last saw it. Metrics and the console read it at every scrape
// and refresh: asking the servers then made each frozen one cost a second
// or more, one after the other, and a scrape outlasted Prometheus's timeout.
func (a *App) memoryUsed(_ context.Context, uid int) (int64, bool) {
	return a.dbs.MemoryUsed(uid)
}
