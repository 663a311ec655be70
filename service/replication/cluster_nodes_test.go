package replication_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// replaceNode adds a new node to the cluster as a replica of master m,
// fails m over to it (CLUSTER FAILOVER) and kills m, as a rolling
// replacement of a cluster's hosts does. It returns the new master.
func replaceNode(t *testing.T, cl *redistest.Cluster, m *redistest.Server) *redistest.Server {
	t.Helper()
	ctx := redistest.Ctx(t)
	bus := redistest.FreePort(t)
	n := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "1500", "--cluster-replica-validity-factor", "0",
		"--appendonly", "yes", "--requirepass", m.Password, "--masterauth", m.Password)
	cl.Nodes = append(cl.Nodes, n)
	nodes, err := m.Client().ClusterNodes(ctx).Result()
	require.NoError(t, err)
	mbus := ""
	for _, line := range strings.Split(nodes, "\n") {
		if strings.Contains(line, "myself") {
			_, mbus, _ = strings.Cut(strings.Fields(line)[1], "@")
			mbus, _, _ = strings.Cut(mbus, ",")
		}
	}
	nc := n.Client()
	require.NoError(t, nc.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", m.Port, mbus).Err())
	id := cl.NodeID(m)
	// CLUSTER REPLICATE is sent until the node knows m (gossip), and then
	// no more: each one restarts the node's replication from scratch, so
	// one at each poll kept a slow full sync from ever ending.
	replicating := false
	redistest.Eventually(t, time.Minute, "the new node replicates "+m.Addr(), func() error {
		if !replicating {
			if err := nc.ClusterReplicate(ctx, id).Err(); err != nil {
				return err
			}
			replicating = true
		}
		info, err := nc.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("%v %s", err, info)
		}
		return nil
	})
	// Every node must know it as m's replica before it may stand.
	nid := cl.NodeID(n)
	redistest.Eventually(t, time.Minute, "every node knows the new replica", func() error {
		for _, o := range cl.Nodes {
			if !o.Running() {
				continue
			}
			nodes, err := o.Client().ClusterNodes(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(nodes, nid) || !strings.Contains(nodes, "slave "+id) {
				return fmt.Errorf("%s: %s", o.Addr(), nodes)
			}
		}
		return nil
	})
	cl.Promote(n, true)
	m.Stop()
	cl.WaitOK()
	return n
}

// Every node of a clustered source is replaced while the service runs (a
// rolling replacement of its hosts): the service follows each failover.
// Then it restarts, while the node of the URL is gone: it must find the
// cluster through the nodes it knew last, not only through those it knew
// when the round began.
func TestAClusterWhoseNodesWereAllReplacedIsFoundAfterARestart(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0, "--requirepass", "cluster-secret", "--masterauth", "cluster-secret")
	cc := cl.Client()
	writeClusterDataset(t, cc, "", 50)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	masters := cl.Masters()
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: masters[0].URL()}}})
	a.waitInSync(dst.UID, 2*time.Minute)
	dc := destClient(t, dst, 0)
	waitLoadPersisted(t, dc)

	for _, m := range masters {
		sh, ok := shardOf(a.get(dst.UID).ReplicaSources[0], m.Addr())
		require.True(t, ok)
		n := replaceNode(t, cl, m)
		waitShard(t, a, dst.UID, sh.Slots, n.Addr())
	}
	// A client that knows the new nodes only.
	var addrs []string
	for _, n := range cl.Nodes {
		if n.Running() {
			addrs = append(addrs, n.Addr())
		}
	}
	cc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: "cluster-secret"})
	defer cc.Close()
	writeClusterDataset(t, cc, "replaced:", 20)
	eventuallyEqualCluster(t, a, dst, dc, cl)

	i.Stop(t)
	writeClusterDataset(t, cc, "while-down:", 20)
	i.StartAgain(t)
	a.waitInSync(dst.UID, 2*time.Minute)
	eventuallyEqualCluster(t, a, dst, dc, cl)
}
