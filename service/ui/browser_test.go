package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	viewerUser     = "watcher"
	viewerPassword = "watcher-password-1"
)

// chromium finds a Chromium the way chromedp would, and fails the test with
// what to install when there is none: a console test never skips in silence.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("the console's browser test needs Chromium and none is on PATH: install Debian's chromium package (apt-get install -y chromium); scripts/ensure-deps.sh does it")
	return ""
}

// TestConsoleInBrowser drives the console in headless Chromium against a
// running service with a Replica Of: the admin logs in, sees the source in
// sync, pauses and resumes it from the page; the viewer sees the status but
// no secret, and its attempt to act gets 403.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and Chromium")
	}
	browser := chromium(t)
	i := servicetest.StartWith(t, func(c *app.Config) {
		c.Name = "us-east"
		c.ViewerUser, c.ViewerPassword = viewerUser, viewerPassword
		// No grace for a regenerated password: the destination that keeps
		// the old one fails at once, and the page must say so.
		c.AdminPasswordGrace = -1
	})

	// A source with data, and a destination replicating it with compression.
	src := create(t, i, api.CreateDatabaseRequest{Name: "orders", MemorySize: 64 << 20})
	srcClient := client(t, src)
	pipe := srcClient.Pipeline()
	for n := range 2000 {
		pipe.Set(context.Background(), fmt.Sprintf("order:%d", n), strings.Repeat(`{"sku":42,"qty":3,"status":"shipped"}`, 4), 0)
	}
	_, err := pipe.Exec(context.Background())
	require.NoError(t, err, "fill the source")
	var su api.SourceURL
	do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &su)
	dst := create(t, i, api.CreateDatabaseRequest{Name: "orders_replica", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: su.URI, Compression: 3}}})
	waitSync(t, i, dst.UID, api.SyncEnabled, api.SourceInSync)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,                               // tests run as root in CI containers
		chromedp.Flag("ignore-certificate-errors", true), // the instance's own CA
		chromedp.WindowSize(1400, 900),
	)...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// The first call starts the browser, which lives as long as its context:
	// no timeout on that one.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(i.URL+"/")), "start Chromium and open the console")

	card := fmt.Sprintf("#db-%d", dst.UID)
	syncBadge := card + " .replica-sync"
	sourceStatus := card + " .source-status"

	// The admin logs in and sees the destination, its source in sync.
	logIn(t, bctx, i.Username, i.Password, card)
	waitText(t, bctx, sourceStatus, api.SourceInSync)
	waitText(t, bctx, syncBadge, api.SyncEnabled)
	assert.Equal(t, "orders_replica", text(t, bctx, card+" h3"))
	assert.Contains(t, text(t, bctx, "#instance-name"), "us-east")
	assert.Equal(t, fmt.Sprintf("127.0.0.1:%d", src.ReplicationPort), text(t, bctx, card+" tr.source td.mono"), "the source's address is shown")
	// The lag graph draws the samples the service keeps (one every 5s).
	redistest.Eventually(t, time.Minute, "a lag graph with samples", func() error {
		if n := eval[int](t, bctx, `document.querySelectorAll("`+card+` svg.lag polyline").length`); n != 1 {
			return fmt.Errorf("%d lag lines", n)
		}
		return nil
	})
	assert.Contains(t, text(t, bctx, card+" .load"), "100%", "the finished load shows its progress")
	assert.Contains(t, text(t, bctx, card+" .sources"), "saved", "the bytes saved by compression are shown")

	screenshot(t, bctx)

	// Pause from the page: the API says paused, then resume: in sync again,
	// and a new write reaches the destination.
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+` button[data-action="pause"]`))))
	waitText(t, bctx, syncBadge, api.SyncPaused)
	waitSync(t, i, dst.UID, api.SyncPaused, api.SourceOutOfSync)
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+` button[data-action="resume"]`))))
	waitText(t, bctx, syncBadge, api.SyncEnabled)
	waitText(t, bctx, sourceStatus, api.SourceInSync)
	waitSync(t, i, dst.UID, api.SyncEnabled, api.SourceInSync)
	require.NoError(t, srcClient.Set(context.Background(), "after:resume", "yes", 0).Err())
	dstClient := client(t, dst)
	redistest.Eventually(t, 2*time.Minute, "the write after resume reaches the destination", func() error {
		if v, err := dstClient.Get(context.Background(), "after:resume").Result(); err != nil || v != "yes" {
			return fmt.Errorf("GET after:resume = %q, %v", v, err)
		}
		return nil
	})

	// Stop, then re-enable: the destination is flushed and reloaded, and in
	// sync again. Each goes through a confirmation.
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+` button[data-action="stop"]`))))
	confirm(t, bctx, "Stop the sync of orders_replica?")
	waitText(t, bctx, syncBadge, api.SyncStopped)
	waitSync(t, i, dst.UID, api.SyncStopped, api.SourceOutOfSync)
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+` button[data-action="enable"]`))))
	confirm(t, bctx, "Re-enable the sync of orders_replica?")
	waitText(t, bctx, syncBadge, api.SyncEnabled)
	waitText(t, bctx, sourceStatus, api.SourceInSync)
	waitSync(t, i, dst.UID, api.SyncEnabled, api.SourceInSync)
	require.NoError(t, redistest.Diff(context.Background(), dstClient, srcClient), "the reloaded destination equals the source")

	// "Get Replica Of source URL" shows the URL the API gives, with a copy button.
	srcCard := fmt.Sprintf("#db-%d", src.UID)
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(srcCard+` button[data-action="source-url"]`)), chromedp.WaitVisible(chromedp.CSS("#dialog-url"))))
	assert.Equal(t, su.URI, eval[string](t, bctx, `document.getElementById("dialog-url").value`))
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#dialog-copy"))))
	waitText(t, bctx, "#dialog-copy", "Copied")
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#dialog-ok")), chromedp.WaitNotVisible(chromedp.CSS("#dialog"))))

	// The viewer logs in: same status, no action, no secret.
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#logout"))))
	logIn(t, bctx, viewerUser, viewerPassword, card)
	waitText(t, bctx, "#role", "viewer (read-only)")
	waitText(t, bctx, sourceStatus, api.SourceInSync)
	assert.Zero(t, eval[int](t, bctx, `document.querySelectorAll("button[data-action]").length`), "the viewer is offered no action")
	page := eval[string](t, bctx, `document.documentElement.outerHTML`)
	parsed, err := url.Parse(su.URI)
	require.NoError(t, err)
	adminPass, _ := parsed.User.Password()
	require.NotEmpty(t, adminPass)
	for what, secret := range map[string]string{"the source URL": su.URI, "the source's admin password": adminPass,
		"the destination's password": dst.AuthenticationRedisPass, "the source's password": src.AuthenticationRedisPass} {
		assert.NotContains(t, page, secret, "the viewer's page shows %s", what)
	}
	// What the viewer's browser can fetch holds no secret either, and its
	// attempts to act are refused.
	overview := eval[string](t, bctx, `fetch("/ui/api/overview", {headers: {"Authorization": "Basic " + sessionStorage.getItem("replicad-auth"), "X-Requested-With": "t"}}).then(r => r.text())`)
	assert.Contains(t, overview, "orders_replica")
	assert.NotContains(t, overview, adminPass)
	assert.NotContains(t, overview, dst.AuthenticationRedisPass)
	for _, attempt := range []struct{ method, path, body string }{
		{"PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), `{"replica_sync":"paused"}`},
		{"GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), ""},
		{"POST", fmt.Sprintf("/v1/bdbs/%d/actions/regenerate_admin_password", src.UID), ""},
		{"DELETE", fmt.Sprintf("/v1/bdbs/%d", dst.UID), ""},
	} {
		js := fmt.Sprintf(`fetch(%q, {method: %q, headers: {"Authorization": "Basic " + sessionStorage.getItem("replicad-auth"), "X-Requested-With": "t", "Content-Type": "application/json"}, body: %s}).then(r => r.status)`,
			attempt.path, attempt.method, jsBody(attempt.body))
		assert.Equal(t, http.StatusForbidden, eval[int](t, bctx, js), "the viewer's %s %s", attempt.method, attempt.path)
	}
	waitSync(t, i, dst.UID, api.SyncEnabled, api.SourceInSync)
	var after api.SourceURL
	do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &after)
	assert.Equal(t, su.URI, after.URI, "the viewer's regenerate changed nothing")

	// Back as the admin: "Regenerate password", confirmed, shows the new URL;
	// the destination that still uses the old one says so on the page.
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#logout"))))
	logIn(t, bctx, i.Username, i.Password, card)
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(srcCard+` button[data-action="regenerate"]`))))
	confirm(t, bctx, "Regenerate the admin password of orders?")
	redistest.Eventually(t, time.Minute, "the new source URL is shown", func() error {
		if title := text(t, bctx, "#dialog-title"); title != "New Replica Of source URL of orders" {
			return fmt.Errorf("dialog: %q", title)
		}
		return nil
	})
	shown := eval[string](t, bctx, `document.getElementById("dialog-url").value`)
	do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &after)
	assert.Equal(t, after.URI, shown, "the page shows the API's new source URL")
	assert.NotEqual(t, su.URI, shown, "the password changed")
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#dialog-ok")), chromedp.WaitNotVisible(chromedp.CSS("#dialog"))))
	waitText(t, bctx, sourceStatus, api.SourceOutOfSync)
	redistest.Eventually(t, 2*time.Minute, "the page shows why the sync failed", func() error {
		if e := text(t, bctx, card+" .source-error"); e == "" {
			return fmt.Errorf("no last error shown")
		}
		return nil
	})
}

// confirm checks the confirmation dialog's title and presses OK.
func confirm(t *testing.T, ctx context.Context, title string) {
	t.Helper()
	waitText(t, ctx, "#dialog-title", title)
	assert.Equal(t, "none", eval[string](t, ctx, `getComputedStyle(document.getElementById("dialog-url-row")).display`), "a confirmation shows no URL")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#dialog-ok")), chromedp.WaitNotVisible(chromedp.CSS("#dialog"))), "confirm %q", title)
}

func jsBody(b string) string {
	if b == "" {
		return "undefined"
	}
	j, _ := json.Marshal(b)
	return string(j)
}

// logIn fills the console's login form and waits for the card sel.
func logIn(t *testing.T, ctx context.Context, user, password, sel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#login-user"))), "the login form")
	// The form keeps the last user name: type over it.
	eval[bool](t, ctx, `(document.getElementById("login-user").value = "", document.getElementById("login-password").value = "", true)`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#login-user"), user),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS(sel)),
	), "log in to the console as %s", user)
}

// eval runs js in the page (awaiting a promise) and returns its value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "evaluate %s", js)
	return v
}

// text is the text of the first element that matches the CSS selector sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, "text of %s", sel)
	return strings.TrimSpace(v)
}

// screenshot saves the page under the test's artifacts, and where
// REDIS_REPLICAD_CONSOLE_SCREENSHOT says (the README's picture).
func screenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err, "screenshot")
	require.NotEmpty(t, png)
	path := filepath.Join(t.ArtifactDir(), "console.png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot of the console: %s", path)
	if extra := os.Getenv("REDIS_REPLICAD_CONSOLE_SCREENSHOT"); extra != "" {
		require.NoError(t, os.WriteFile(extra, png, 0o644))
	}
}

// waitText polls the text of the element sel until it is want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	redistest.Eventually(t, 2*time.Minute, fmt.Sprintf("%s shows %q", sel, want), func() error {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		got, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			return err
		}
		if strings.TrimSpace(got) != want {
			return fmt.Errorf("%s shows %q", sel, got)
		}
		return nil
	})
}

// waitSync polls the API until the destination's replica_sync and its
// source's status are as given.
func waitSync(t *testing.T, i *servicetest.Instance, uid int, sync, status string) {
	t.Helper()
	redistest.Eventually(t, 2*time.Minute, fmt.Sprintf("database %d is %s and its source %s", uid, sync, status), func() error {
		var d api.Database
		do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d", uid), nil, &d)
		if d.ReplicaSync != sync || len(d.ReplicaSources) != 1 || d.ReplicaSources[0].Status != status {
			return fmt.Errorf("replica_sync %s, sources %+v", d.ReplicaSync, d.ReplicaSources)
		}
		return nil
	})
}

func create(t *testing.T, i *servicetest.Instance, req api.CreateDatabaseRequest) api.Database {
	t.Helper()
	var d api.Database
	require.Equal(t, http.StatusOK, do(t, i, i.Username, i.Password, "POST", "/v1/bdbs", req, &d), "create %s", req.Name)
	return d
}

func client(t *testing.T, d api.Database) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", d.Endpoint.Host, d.Endpoint.Port), Password: d.AuthenticationRedisPass})
	t.Cleanup(func() { c.Close() })
	return c
}

// do makes one API call as user and decodes a 2xx answer into out.
func do(t *testing.T, i *servicetest.Instance, user, password, method, path string, body, out any) int {
	t.Helper()
	status, data := i.Request(t, user, password, method, path, body)
	if status < 300 && out != nil && len(data) > 0 {
		require.NoError(t, json.Unmarshal(data, out), "%s %s: %s", method, path, data)
	}
	return status
}

// The page shows the last status it read. When it cannot read a newer one
// (the service stopped, or not answering), it must not go on showing
// "in-sync" as if it were now: the cards are marked stale, with the time
// they are from. A read that hung (no answer, the connection open) kept
// the page from ever refreshing again, with no error at all.
func TestConsoleSaysWhenItsStatusIsStale(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and Chromium")
	}
	browser := chromium(t)
	i := servicetest.Start(t)
	src := create(t, i, api.CreateDatabaseRequest{Name: "orders", MemorySize: 32 << 20})
	var su api.SourceURL
	do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &su)
	dst := create(t, i, api.CreateDatabaseRequest{Name: "orders_replica", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: su.URI}}})
	waitSync(t, i, dst.UID, api.SyncEnabled, api.SourceInSync)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("ignore-certificate-errors", true))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(i.URL+"/")), "start Chromium and open the console")
	card := fmt.Sprintf("#db-%d", dst.UID)
	logIn(t, bctx, i.Username, i.Password, card)
	waitText(t, bctx, card+" .source-status", api.SourceInSync)
	stale := func() bool {
		return eval[bool](t, bctx, `document.getElementById("databases").classList.contains("stale")`)
	}
	require.False(t, stale())

	// The service stops: the next refresh fails, and says the status shown
	// is an old one.
	i.Stop(t)
	redistest.Eventually(t, time.Minute, "the page marks its status stale", func() error {
		if !stale() {
			return fmt.Errorf("not marked stale; error shown: %q", text(t, bctx, "#error"))
		}
		return nil
	})
	assert.Contains(t, text(t, bctx, "#error"), "as of", "the error says when the status shown is from")

	// Back: fresh again.
	i.StartAgain(t)
	redistest.Eventually(t, time.Minute, "the page is fresh again", func() error {
		if stale() {
			return fmt.Errorf("still stale: %q", text(t, bctx, "#error"))
		}
		return nil
	})
	waitText(t, bctx, card+" .source-status", api.SourceInSync)

	// A read that gets no answer (a service that hangs, a network that
	// drops packets) is given up after a while, and says so, as a failed
	// one does.
	eval[bool](t, bctx, `(() => {
		const real = window.fetch;
		window.fetch = (url, opts) => String(url).includes("/ui/api/overview")
			? new Promise((_, reject) => opts && opts.signal && opts.signal.addEventListener("abort", () => reject(opts.signal.reason)))
			: real(url, opts);
		return true;
	})()`)
	redistest.Eventually(t, time.Minute, "the page marks its status stale when reads hang", func() error {
		if !stale() {
			return fmt.Errorf("not marked stale; error shown: %q", text(t, bctx, "#error"))
		}
		return nil
	})
	assert.Contains(t, text(t, bctx, "#error"), "as of")
}

// An action the API refuses says why on the page until the next action.
// The refresh that follows every action cleared the message at once, so
// that a refused pause, say, seemed to have done nothing at all.
func TestConsoleKeepsAnActionsError(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and Chromium")
	}
	browser := chromium(t)
	i := servicetest.Start(t)
	src := create(t, i, api.CreateDatabaseRequest{Name: "orders", MemorySize: 32 << 20})
	var su api.SourceURL
	do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &su)
	dst := create(t, i, api.CreateDatabaseRequest{Name: "orders_replica", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: su.URI}}})
	waitSync(t, i, dst.UID, api.SyncEnabled, api.SourceInSync)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("ignore-certificate-errors", true))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(i.URL+"/")), "start Chromium and open the console")
	card := fmt.Sprintf("#db-%d", dst.UID)
	logIn(t, bctx, i.Username, i.Password, card)
	waitText(t, bctx, card+" .source-status", api.SourceInSync)

	// The API refuses the change (as it does a change racing another, with
	// a 409): here, the page's own fetch answers for it.
	eval[bool](t, bctx, `(() => {
		const real = window.fetch;
		window.fetch = (url, opts) => opts && opts.method === "PUT"
			? Promise.resolve(new Response(JSON.stringify({error_code: "conflict", description: "refused for the test"}), {status: 409, headers: {"Content-Type": "application/json"}}))
			: real(url, opts);
		return true;
	})()`)
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+` button[data-action="pause"]`))))
	refreshes := func() int { return eval[int](t, bctx, `window.__refreshes || 0`) }
	eval[bool](t, bctx, `(() => {
		new MutationObserver(() => { window.__refreshes = (window.__refreshes || 0) + 1; })
			.observe(document.getElementById("refreshed"), {childList: true, characterData: true, subtree: true});
		return true;
	})()`)
	redistest.Eventually(t, time.Minute, "two refreshes after the refused action", func() error {
		if n := refreshes(); n < 2 {
			return fmt.Errorf("%d refreshes", n)
		}
		return nil
	})
	assert.Contains(t, eval[string](t, bctx, `document.body.innerText`), "refused for the test", "the page still says why the action was refused")
	waitText(t, bctx, card+" .replica-sync", api.SyncEnabled)
}

// A lag can be long (a source down for a day: the lag counts from when it
// was last in sync): the page says it in hours and days, not thousands of
// minutes.
func TestConsoleShowsLongLagsInHoursAndDays(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and Chromium")
	}
	browser := chromium(t)
	i := servicetest.Start(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("ignore-certificate-errors", true))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(i.URL+"/")), "start Chromium and open the console")
	for seconds, want := range map[float64]string{
		0.25: "250 ms", 42: "42.0 s", 600: "10 min", 3 * 3600: "3.0 h", 30 * 3600: "30.0 h", 3 * 86400: "3.0 days",
	} {
		assert.Equal(t, want, eval[string](t, bctx, fmt.Sprintf("duration(%g)", seconds)), "%g s", seconds)
	}
}

// A source's sync_note says what of it the destination does not reproduce
// (keys missing until the next full resync, writes not replicated): the
// page showed no word of it, the source in sync and its row clean.
func TestConsoleShowsASourcesSyncNote(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and Chromium")
	}
	browser := chromium(t)
	i := servicetest.Start(t)
	src := create(t, i, api.CreateDatabaseRequest{Name: "orders", MemorySize: 32 << 20})
	// Logical database 16 is the service's own: what an application puts
	// there is not replicated, and the sync note counts it.
	db16 := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", src.Endpoint.Host, src.Endpoint.Port), Password: src.AuthenticationRedisPass, DB: 16})
	t.Cleanup(func() { db16.Close() })
	require.NoError(t, db16.Set(context.Background(), "not-replicated", "x", 0).Err())
	var su api.SourceURL
	do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &su)
	dst := create(t, i, api.CreateDatabaseRequest{Name: "orders_replica", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: su.URI}}})
	waitSync(t, i, dst.UID, api.SyncEnabled, api.SourceInSync)
	var note string
	redistest.Eventually(t, time.Minute, "the source has a sync note", func() error {
		var d api.Database
		do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &d)
		if note = d.ReplicaSources[0].SyncNote; note == "" {
			return fmt.Errorf("no sync_note")
		}
		return nil
	})

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("ignore-certificate-errors", true))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(i.URL+"/")), "start Chromium and open the console")
	card := fmt.Sprintf("#db-%d", dst.UID)
	logIn(t, bctx, i.Username, i.Password, card)
	waitText(t, bctx, card+" .source-status", api.SourceInSync)
	assert.Contains(t, text(t, bctx, card+" tr.source"), note, "the source's row shows its sync note")
}

// The source URL dialog holds the admin password while it is open, not
// after: the URL stayed in the page (the dialog's input) once closed, and
// after a logout, for whoever used the page next (the viewer, say).
func TestConsoleForgetsASourceURLOnceItsDialogCloses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and Chromium")
	}
	browser := chromium(t)
	i := servicetest.StartWith(t, func(c *app.Config) { c.ViewerUser, c.ViewerPassword = viewerUser, viewerPassword })
	src := create(t, i, api.CreateDatabaseRequest{Name: "orders", MemorySize: 32 << 20})
	var su api.SourceURL
	do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &su)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("ignore-certificate-errors", true))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(i.URL+"/")), "start Chromium and open the console")
	card := fmt.Sprintf("#db-%d", src.UID)
	logIn(t, bctx, i.Username, i.Password, card)
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+` button[data-action="source-url"]`)), chromedp.WaitVisible(chromedp.CSS("#dialog-url"))))
	require.Equal(t, su.URI, eval[string](t, bctx, `document.getElementById("dialog-url").value`), "the dialog shows the URL")
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#dialog-ok")), chromedp.WaitNotVisible(chromedp.CSS("#dialog"))))
	// The dialog's close event follows its closing.
	redistest.Eventually(t, 10*time.Second, "the closed dialog keeps no URL", func() error {
		if v := eval[string](t, bctx, `document.getElementById("dialog-url").value`); v != "" {
			return fmt.Errorf("the dialog's input holds %q", v)
		}
		return nil
	})

	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#logout"))))
	logIn(t, bctx, viewerUser, viewerPassword, card)
	for _, input := range eval[[]string](t, bctx, `Array.from(document.querySelectorAll("input")).map((e) => e.value)`) {
		assert.NotContains(t, input, su.URI, "the viewer's page holds the admin's source URL")
	}
}

// The lag samples carry the service's time, and the graph placed them from
// the browser's clock: a browser minutes behind (or a service minutes
// ahead) drew every sample past the graph's right edge, an empty graph.
func TestConsoleLagGraphFollowsTheServicesClock(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and Chromium")
	}
	browser := chromium(t)
	i := servicetest.Start(t)
	src := create(t, i, api.CreateDatabaseRequest{Name: "orders", MemorySize: 32 << 20})
	var su api.SourceURL
	do(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &su)
	dst := create(t, i, api.CreateDatabaseRequest{Name: "orders_replica", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: su.URI}}})
	waitSync(t, i, dst.UID, api.SyncEnabled, api.SourceInSync)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("ignore-certificate-errors", true))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(i.URL+"/")), "start Chromium and open the console")
	// The browser's clock is 10 minutes behind the service's.
	eval[bool](t, bctx, `(() => { const real = Date.now; Date.now = () => real() - 600000; return true; })()`)
	card := fmt.Sprintf("#db-%d", dst.UID)
	logIn(t, bctx, i.Username, i.Password, card)
	redistest.Eventually(t, time.Minute, "the lag graph draws the samples inside it", func() error {
		xs := eval[[]float64](t, bctx, `(() => {
			const dot = document.querySelector("`+card+` svg.lag circle");
			const line = document.querySelector("`+card+` svg.lag polyline");
			if (!dot || !line) return [];
			return [parseFloat(dot.getAttribute("cx"))].concat(line.getAttribute("points").split(" ").map((p) => parseFloat(p.split(",")[0])));
		})()`)
		if len(xs) == 0 {
			return fmt.Errorf("no sample drawn yet")
		}
		for _, x := range xs {
			if x < 0 || x > 240 {
				return fmt.Errorf("a sample drawn at x=%g, outside the graph's 0-240", x)
			}
		}
		return nil
	})
}

// A database whose delete did not finish (status deleting) offers no
// action in the console: each of them (source URL, regenerate) is refused,
// and the card says what finishes it instead.
func TestConsoleOffersNoActionOnADatabaseBeingDeleted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and Chromium")
	}
	browser := chromium(t)
	i := servicetest.Start(t)
	db := create(t, i, api.CreateDatabaseRequest{Name: "stuck", MemorySize: 16 << 20})
	// A mount inside its directory makes its files impossible to remove.
	mnt := filepath.Join(i.DataDir, "dbs", fmt.Sprint(db.UID), "mounted")
	require.NoError(t, os.MkdirAll(mnt, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("this test blocks a delete with a tmpfs it mounts: run it as root (scripts/test.sh does): mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	require.Equal(t, http.StatusInternalServerError, do(t, i, i.Username, i.Password, "DELETE", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, nil))

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("ignore-certificate-errors", true))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(i.URL+"/")), "start Chromium and open the console")
	card := fmt.Sprintf("#db-%d", db.UID)
	logIn(t, bctx, i.Username, i.Password, card)
	waitText(t, bctx, card+" .badge.deleting", api.StatusDeleting)
	assert.Contains(t, eval[string](t, bctx, fmt.Sprintf(`document.querySelector(%q).innerText`, card+" .actions")), "being deleted")
	assert.Equal(t, 0, eval[int](t, bctx, fmt.Sprintf(`document.querySelectorAll(%q).length`, card+" button[data-action]")), "no action is offered")
}
