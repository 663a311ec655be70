package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRingKeepsTheLastSamplesInOrder(t *testing.T) {
	r := &ring{buf: make([]sample, 3)}
	assert.Empty(t, r.points())
	base := time.Unix(1000, 0)
	for i := range 5 {
		r.add(sample{at: base.Add(time.Duration(i) * time.Second), lag: float64(i)})
	}
	assert.Equal(t, [][2]float64{{1002, 2}, {1003, 3}, {1004, 4}}, r.points())
}

// The page works offline: nothing it loads comes from another host.
func TestConsoleHasNoExternalAssets(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|import\s+.*from\s+["']https?:`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		b, err := static.ReadFile(path)
		require.NoError(t, err)
		assert.NotRegexp(t, external, string(b), "%s loads something from another host", path)
		return nil
	})
	require.NoError(t, err)

	c := &Console{}
	for path, typ := range map[string]string{"/": "text/html", "/ui/app.js": "javascript", "/ui/style.css": "text/css"} {
		rec := httptest.NewRecorder()
		c.Files().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		assert.Equal(t, http.StatusOK, rec.Code, path)
		assert.Contains(t, rec.Header().Get("Content-Type"), typ, path)
		assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'self'", path)
	}
}
