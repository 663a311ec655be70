package app

import (
	"context"
	"strconv"
	"strings"
	"time"

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

// memoryUsed is the used_memory of database uid's redis-server.
func (a *App) memoryUsed(ctx context.Context, uid int) (int64, bool) {
	c := a.dbs.Client(uid)
	if c == nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
