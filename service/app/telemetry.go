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

// memoryUsed is the used_memory of database uid: of its redis-server, or
// the sum over the masters of a sharded database (the data memory_size
// bounds; replicas hold copies).
func (a *App) memoryUsed(ctx context.Context, uid int) (int64, bool) {
	clients := a.dbs.NodeClients(uid)
	if len(clients) == 0 {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var total int64
	for _, c := range clients {
		info, err := c.Info(ctx, "memory", "replication").Result()
		if err != nil {
			return 0, false // part of the sum would be missing
		}
		var used int64
		master := len(clients) == 1
		for _, line := range strings.Split(info, "\n") {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				if used, err = strconv.ParseInt(v, 10, 64); err != nil {
					return 0, false
				}
			}
			if line == "role:master" {
				master = true
			}
		}
		if master {
			total += used
		}
	}
	return total, true
}
