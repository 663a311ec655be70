// Command redis-replicad is the replication service: it runs Redis databases
// and makes them Replica Of other databases, behind a REST API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/sysmon"
	"github.com/replicad/terraform-provider-redis/service/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		sysmon.KeepAwake()
	}
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, errLogged) {
			fmt.Fprintln(os.Stderr, "redis-replicad:", err)
		}
		os.Exit(1)
	}
}

// errLogged wraps an error that run has written to the service's log
// already, in its format: a plain line after it would be the one line of
// a JSON log that does not parse, and the one that says why the service
// ended.
var errLogged = errors.New("logged")

type loggedError struct{ err error }

func (e loggedError) Error() string        { return e.err.Error() }
func (e loggedError) Is(target error) bool { return target == errLogged }
func (e loggedError) Unwrap() error        { return e.err }

// topUsage is the help of the command itself.
const topUsage = `usage: redis-replicad <command> [flags]

commands:
  serve     run the service (redis-replicad serve -h lists its flags)
  version   print the version
  help      print this help
`

func run(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("a command is needed: serve, version or help (redis-replicad help)")
	}
	switch args[0] {
	case "serve":
	case "version", "--version", "-version":
		fmt.Println(app.Version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(os.Stdout, topUsage)
		return nil
	default:
		return fmt.Errorf("unknown command %q: want serve, version or help (redis-replicad help)", args[0])
	}
	cfg, logOpts, err := parseServe(args[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		if logOpts.format == "json" {
			// JSON was asked for and understood: the one line saying
			// why the service does not start is JSON too.
			logOpts.logger(stderr).Error("invalid configuration", "err", err)
			return loggedError{err}
		}
		return err
	}
	cfg.Logger = logOpts.logger(stderr)
	for _, w := range logOpts.warnings {
		cfg.Logger.Warn(w)
	}
	// The redis-server children inherit the environment: a password
	// given there is no business of theirs.
	for _, name := range []string{"admin-password", "viewer-password"} {
		_ = os.Unsetenv(envName(name))
	}
	// go-redis prints its own complaints (a pool that cannot dial a
	// database that is down) with the standard logger: they go through
	// ours instead, so that every line has the chosen format.
	redis.SetLogger(goRedisLog{cfg.Logger.With("component", "go-redis")})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, cfg)
	if err != nil {
		cfg.Logger.Error("cannot start", "err", err)
		return loggedError{err}
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Stop(shutdownCtx); err != nil {
		cfg.Logger.Error("stop", "err", err)
		return loggedError{err}
	}
	return nil
}

// parseServe reads the flags of "serve"; each flag can also be given as the
// environment variable REDIS_REPLICAD_<NAME> (dashes become underscores).
func parseServe(args []string, stderr io.Writer) (app.Config, logOptions, error) {
	var cfg app.Config
	var portRange, logLevel string
	var lo logOptions
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory of the state file, certificates and databases (required)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9443", "host:port of the HTTPS REST API")
	fs.StringVar(&cfg.Name, "name", "", "cluster name shown by /v1/cluster (default: the host name)")
	fs.StringVar(&cfg.AdminUser, "admin-user", "admin", "user name of the REST API")
	fs.StringVar(&cfg.AdminPassword, "admin-password", "", "password of the REST API (default: generated into <data-dir>/admin-password); on the command line every local user can read it (ps): prefer the environment variable or --admin-password-file")
	var adminPasswordFile, viewerPasswordFile string
	fs.StringVar(&adminPasswordFile, "admin-password-file", "", "file whose content (a trailing newline aside) is the password of the REST API, instead of --admin-password")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate of the API (default: issued by the instance's own CA, <data-dir>/ca.pem)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM key of --tls-cert")
	fs.StringVar(&cfg.RedisServer, "redis-server", "", "path of the redis-server binary (default: found on PATH)")
	fs.StringVar(&portRange, "port-range", "12000-12999", "FROM-TO: the ports of databases that do not ask for one, and of every replication endpoint (a sharded database's nodes take three each)")
	fs.StringVar(&cfg.AdvertiseHost, "advertise-host", "", "host name that database endpoints and source URLs advertise (default: the listen host, 127.0.0.1 when it listens on every address)")
	fs.StringVar(&cfg.ViewerUser, "viewer-user", "", "user name of a read-only user of the API, the console and /metrics (default: none)")
	fs.StringVar(&cfg.ViewerPassword, "viewer-password", "", "password of --viewer-user; on the command line every local user can read it (ps): prefer the environment variable or --viewer-password-file")
	fs.StringVar(&viewerPasswordFile, "viewer-password-file", "", "file whose content (a trailing newline aside) is the password of --viewer-user, instead of --viewer-password")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (API requests are logged at debug)")
	fs.StringVar(&lo.format, "log-format", "text", "text (key=value) or json (one object a line)")
	fs.DurationVar(&cfg.AdminPasswordGrace, "admin-password-grace", app.DefaultAdminPasswordGrace,
		"how long a database's admin password keeps working for replication after it is regenerated (0s: not at all)")
	fs.Usage = func() { usage(fs) }
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		// An empty variable is unset, as in most tools: a deployment
		// template that leaves one blank gets the default.
		if v := os.Getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("invalid value %q for $%s (--%s): %w", v, name, f.Name, err)
			}
		}
	})
	if envErr != nil {
		return cfg, lo, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, lo, err
	}
	// A password on the command line shows in ps and /proc/<pid>/cmdline
	// to every local user. Said without the value.
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "admin-password" || f.Name == "viewer-password" {
			lo.warnings = append(lo.warnings, fmt.Sprintf("--%s was given on the command line, where every local user can read it (ps, /proc/<pid>/cmdline): give it with --%s-file or $%s instead", f.Name, f.Name, envName(f.Name)))
		}
	})
	for _, pf := range []struct {
		flag, file string
		into       *string
	}{{"admin-password", adminPasswordFile, &cfg.AdminPassword}, {"viewer-password", viewerPasswordFile, &cfg.ViewerPassword}} {
		if pf.file == "" {
			continue
		}
		if *pf.into != "" {
			return cfg, lo, fmt.Errorf("--%s and --%s-file both give the password: keep one", pf.flag, pf.flag)
		}
		pw, err := readPasswordFile(pf.file)
		if err != nil {
			return cfg, lo, fmt.Errorf("--%s-file: %w", pf.flag, err)
		}
		*pf.into = pw
		if st, err := os.Stat(pf.file); err == nil && st.Mode().Perm()&0o004 != 0 {
			// The file was meant to keep the password from other
			// local users, as the command line does not.
			lo.warnings = append(lo.warnings, fmt.Sprintf("--%s-file %s can be read by every local user (mode %#o): chmod o-r it", pf.flag, pf.file, st.Mode().Perm()))
		}
	}
	if fs.NArg() > 0 {
		// A value meant for a flag whose name was mistyped, or a flag
		// after a stray word: ignoring it would run with a default.
		return cfg, lo, fmt.Errorf("unexpected argument %q: serve takes flags only (redis-replicad serve -h)", fs.Arg(0))
	}
	if cfg.DataDir == "" {
		return cfg, lo, errors.New("--data-dir (or REDIS_REPLICAD_DATA_DIR) is required")
	}
	from, to, ok := strings.Cut(portRange, "-")
	min, err1 := strconv.Atoi(from)
	max, err2 := strconv.Atoi(to)
	if !ok || err1 != nil || err2 != nil || min < 1 || max > 65535 || min > max {
		return cfg, lo, fmt.Errorf("--port-range %q: want FROM-TO, ports from 1 to 65535 with FROM <= TO, for example 12000-12999", portRange)
	}
	cfg.PortMin, cfg.PortMax = min, max
	if err := checkListen(cfg.Listen); err != nil {
		return cfg, lo, err
	}
	if cfg.AdminPasswordGrace < 0 {
		return cfg, lo, fmt.Errorf("--admin-password-grace %s: must not be negative (0s: no grace period)", cfg.AdminPasswordGrace)
	}
	if cfg.AdminPasswordGrace == 0 {
		cfg.AdminPasswordGrace = -1 // app.Config's zero value is the default
	}
	for flagName, user := range map[string]string{"--admin-user": cfg.AdminUser, "--viewer-user": cfg.ViewerUser} {
		// Basic auth ends the user name at the first colon: such a user
		// could never log in, to the API, /metrics or the console.
		if strings.ContainsRune(user, ':') || strings.ContainsFunc(user, unicode.IsControl) {
			// Not quoted: "user:password" in one flag is a common slip.
			return cfg, lo, fmt.Errorf("%s: a user name may not contain ':' or control characters (basic auth ends the user name at the first ':')", flagName)
		}
	}
	if err := lo.level.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, lo, fmt.Errorf("--log-level: %w", err)
	}
	if lo.format != "text" && lo.format != "json" {
		return cfg, lo, fmt.Errorf("--log-format %q: want text or json", lo.format)
	}
	return cfg, lo, nil
}

// readPasswordFile reads a password from path: its content without the
// line end that editors and echo add. The error never quotes the content.
func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	// Without the byte order mark some Windows editors begin a file with,
	// which nobody types as part of a password either.
	pw := strings.TrimRight(strings.TrimPrefix(string(b), "\ufeff"), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	if strings.ContainsAny(pw, "\r\n") {
		return "", fmt.Errorf("%s holds more than one line: it must hold the password only", path)
	}
	return pw, nil
}

// checkListen checks --listen before anything is written to the data
// directory: HOST:PORT, the port a number (0 picks one).
func checkListen(listen string) error {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: want HOST:PORT, for example 127.0.0.1:9443: %w", listen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("--listen %q: the port must be a number from 0 to 65535", listen)
	}
	return nil
}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "REDIS_REPLICAD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// usage lists the flags of serve, each with its environment variable.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, "usage: redis-replicad serve [flags]")
	fmt.Fprintln(w, "\nEach flag can also be set by the environment variable shown; a flag on the command line wins.")
	fmt.Fprintln(w)
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s  [$%s]\n    \t%s%s\n", f.Name, envName(f.Name), f.Usage, def)
	})
}

// logOptions are --log-level and --log-format.
type logOptions struct {
	level  slog.Level
	format string
	// warnings found while reading the flags, logged once the logger is made.
	warnings []string
}

func (o logOptions) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: o.level}
	if o.format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// goRedisLog passes go-redis's messages to slog, at debug level: what they
// report (a connection that failed) is the caller's error to report too.
type goRedisLog struct{ log *slog.Logger }

func (l goRedisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}
