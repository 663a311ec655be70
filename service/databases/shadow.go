package databases

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// ErrNoRoomForShadow says that the host lacks the memory for a second copy
// of a database: its reload then happens in place (readers see it fill up).
var ErrNoRoomForShadow = errors.New("not enough free memory for a second copy of the database")

// Shadow is a second redis-server beside a database, which a reload loads
// while the database keeps serving its previous data; SwapIn then makes the
// loaded data the database's in one step.
type Shadow struct {
	m      *Manager
	d      store.Database
	dir    string
	socket string
	cmd    *exec.Cmd
	waited chan error
}

// StartShadow starts the shadow of database d, empty, with d's memory limit.
// ErrNoRoomForShadow when the host's free memory cannot hold d's memory
// limit besides what runs.
func (m *Manager) StartShadow(ctx context.Context, d store.Database) (*Shadow, error) {
	if avail, err := memAvailable(); err == nil && avail < uint64(d.MemorySize)+64<<20 {
		return nil, fmt.Errorf("%w: %d MiB free, the database may use %d MiB", ErrNoRoomForShadow, avail>>20, d.MemorySize>>20)
	}
	dir := filepath.Join(m.Dir(d.UID), "reload")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear the reload directory of database %d: %w", d.UID, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the reload directory of database %d: %w", d.UID, err)
	}
	s := &Shadow{m: m, d: d, dir: dir, socket: strings.TrimSuffix(m.Socket(d.UID), ".sock") + "-reload.sock", waited: make(chan error, 1)}
	conf := renderShadowConfig(d, dir, s.socket)
	confPath := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("write the reload config of database %d: %w", d.UID, err)
	}
	_ = os.Remove(s.socket) // left by a shadow that was killed
	s.cmd = exec.Command(m.cfg.RedisServer, confPath)
	s.cmd.Dir = dir
	// It dies with the service, as the databases do.
	s.cmd.SysProcAttr = childProcAttr(syscall.SIGKILL)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the reload server of database %d: %w", d.UID, err)
	}
	go func() { s.waited <- s.cmd.Wait() }()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Its socket first, so that no dial fails (and logs) before it exists.
	for {
		if _, err := os.Stat(s.socket); err == nil || wctx.Err() != nil {
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	c := s.client(0)
	defer c.Close()
	if err := WaitReady(wctx, c); err != nil {
		s.Close()
		return nil, fmt.Errorf("the reload server of database %d: %w", d.UID, err)
	}
	// Like the destination (a replica), it expires nothing by itself: the
	// sources' DELs do. Active expiry goes off before it is writable.
	if err := c.Do(wctx, "DEBUG", "SET-ACTIVE-EXPIRE", "0").Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("stop the expiry of the reload server of database %d: %w", d.UID, err)
	}
	if err := c.ConfigSet(wctx, "replica-read-only", "no").Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("make the reload server of database %d writable: %w", d.UID, err)
	}
	return s, nil
}

// Socket is where the shadow listens; InternalUser and d's internal
// password log in.
func (s *Shadow) Socket() string { return s.socket }

// LogFile is the shadow's redis-server log.
func (s *Shadow) LogFile() string { return filepath.Join(s.dir, "redis.log") }

func (s *Shadow) client(db int) *redis.Client {
	return unixClient(s.socket, s.d.InternalPassword, db)
}

// unixClient is a connection to a server's socket as the service's user,
// with no read timeout of its own: SAVE and DEBUG RELOAD of a large dataset
// take as long as they take, and ctx bounds them.
func unixClient(socket, password string, db int) *redis.Client {
	return redis.NewClient(&redis.Options{Network: "unix", Addr: socket, Username: InternalUser, Password: password, DB: db,
		MaxRetries: -1, ReadTimeout: -1, ContextTimeoutEnabled: true})
}

// closeWhenDone closes c once ctx ends, which ends a command waiting for
// its answer: go-redis heeds a context's deadline but not its cancel, and a
// stopped server (SIGSTOP, a stalled disk) never answers. Without it, a
// sync being stopped (a delete, a shutdown) waited for ever behind a
// DEBUG RELOAD, with the controller's lock held. The caller calls the
// returned func when done with c.
func closeWhenDone(ctx context.Context, c *redis.Client) (stop func()) {
	cancel := context.AfterFunc(ctx, func() { c.Close() })
	return func() {
		cancel()
		c.Close()
	}
}

// ended is err, or ctx's error when ctx ended first (the client was
// closed under the command).
func ended(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// SwapIn makes the shadow's data the database's: the shadow saves it, and
// the database loads that file in place of its own data (its clients wait
// for the load, and never see part of a dataset). The database's AOF is off
// afterwards: the caller turns it on again, which rewrites it from the new
// data. A crash before that leaves the database's previous AOF, from before
// the reload, whose checkpoints say that the reload is still to do. The
// database's own replicas (a chain) resync in full. The shadow is closed.
func (s *Shadow) SwapIn(ctx context.Context) error {
	defer s.Close()
	sc := s.client(0)
	defer closeWhenDone(ctx, sc)()
	if err := ended(ctx, sc.Save(ctx).Err()); err != nil {
		return fmt.Errorf("save the reloaded data of database %d: %w", s.d.UID, err)
	}
	return s.m.LoadRDB(ctx, s.d, filepath.Join(s.dir, "dump.rdb"))
}

// CreateRDB creates an empty file for an RDB that LoadRDB then loads into
// d: in d's directory, so that LoadRDB only renames it.
func (m *Manager) CreateRDB(d store.Database) (*os.File, error) {
	// One load at a time per database: a file left by a load that a crash
	// interrupted is only taking disk space.
	if stale, err := filepath.Glob(filepath.Join(m.Dir(d.UID), "load-*.rdb")); err == nil {
		for _, p := range stale {
			_ = os.Remove(p)
		}
	}
	f, err := os.CreateTemp(m.Dir(d.UID), "load-*.rdb")
	if err != nil {
		return nil, fmt.Errorf("create an rdb file for database %d: %w", d.UID, err)
	}
	return f, nil
}

// LoadRDB makes the RDB file at path d's data, in place of its own, in one
// step for its readers (they wait for the load, and never see part of a
// dataset). The file is consumed. d's AOF is off afterwards: the caller
// turns it on again, which rewrites it from the new data. A crash before
// that leaves d's previous AOF, from before the load, whose checkpoints
// say that the load is still to do. d's own replicas (a chain) resync in
// full.
func (m *Manager) LoadRDB(ctx context.Context, d store.Database, path string) error {
	dump := filepath.Join(m.Dir(d.UID), "dump.rdb")
	if err := os.Rename(path, dump); err != nil {
		os.Remove(path)
		return fmt.Errorf("move the loaded data of database %d: %w", d.UID, err)
	}
	defer os.Remove(dump)
	c := unixClient(m.Socket(d.UID), d.InternalPassword, 0)
	defer closeWhenDone(ctx, c)()
	if err := ended(ctx, c.ConfigSet(ctx, "appendonly", "no").Err()); err != nil {
		return fmt.Errorf("pause the AOF of database %d for the load: %w", d.UID, err)
	}
	// A loading server answers the clients it serves between two chunks
	// of the file with LOADING (it does so every
	// loading-process-events-interval-bytes, which the master link sets
	// low). With the largest interval, readers wait for the load and then
	// read the new data instead.
	every, err := c.ConfigGet(ctx, "loading-process-events-interval-bytes").Result()
	if err := ended(ctx, err); err != nil {
		return fmt.Errorf("read how often database %d answers its clients while it loads: %w", d.UID, err)
	}
	if err := ended(ctx, c.ConfigSet(ctx, "loading-process-events-interval-bytes", strconv.Itoa(math.MaxInt32)).Err()); err != nil {
		return fmt.Errorf("make the clients of database %d wait for the load: %w", d.UID, err)
	}
	if err := ended(ctx, c.Do(ctx, "DEBUG", "RELOAD", "NOSAVE").Err()); err != nil {
		return fmt.Errorf("load the new data into database %d: %w", d.UID, err)
	}
	if v := every["loading-process-events-interval-bytes"]; v != "" {
		if err := ended(ctx, c.ConfigSet(ctx, "loading-process-events-interval-bytes", v).Err()); err != nil {
			return fmt.Errorf("restore how often database %d answers its clients while it loads: %w", d.UID, err)
		}
	}
	// Its replicas hold the previous data: a new replication history makes
	// them resync in full instead of continuing.
	if err := ended(ctx, c.Do(ctx, "DEBUG", "CHANGE-REPL-ID").Err()); err != nil {
		return fmt.Errorf("start a new replication history for database %d: %w", d.UID, err)
	}
	if err := ended(ctx, c.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err()); err != nil {
		return fmt.Errorf("disconnect the replicas of database %d: %w", d.UID, err)
	}
	return nil
}

// Close stops the shadow and deletes its files.
func (s *Shadow) Close() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.waited
		s.waited <- nil // a second Close returns at once
	}
	_ = os.RemoveAll(s.dir)
	_ = os.Remove(s.socket)
}

// renderShadowConfig is the config of a shadow: the service's user only,
// no port, no persistence, d's memory limit.
func renderShadowConfig(d store.Database, dir, socket string) string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	line("# A reload of database %d, generated by redis-replicad.", d.UID)
	line("port 0")
	line("unixsocket %s", quote(socket))
	line("unixsocketperm 700")
	line("daemonize no")
	line("dir %s", quote(dir))
	line("logfile %s", quote("redis.log"))
	line("databases %d", layout.Databases)
	line("appendonly no")
	line(`save ""`)
	line("maxmemory %d", d.MemorySize)
	line("maxmemory-policy noeviction")
	// A replica (of port 0, which refuses it) keeps the keys whose TTL
	// passes during the load, as the destination does (see renderConfig).
	// The sources' streams reach it over a master link of its own (see
	// package replication): written by a normal client, a replica deletes
	// an expired key that a write touches.
	line("replicaof 127.0.0.1 0")
	line("replica-read-only yes")
	line("replica-ignore-maxmemory no")
	line("enable-debug-command local")
	line("user %s off", AppUser)
	args := aclArgs(InternalUser, d.InternalPassword, fullRules)
	line("user %s %s", args[0], strings.Join(args[2:], " "))
	return b.String()
}

// memAvailable is the host's MemAvailable, in bytes.
func memAvailable() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no MemAvailable in /proc/meminfo")
}
