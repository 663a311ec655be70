package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStoreSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(*Database, []Database) error { return nil }
	a, err := s.Create(Database{Name: "a", Port: 12000, RedisPassword: "pa"}, ok)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(Database{Name: "b", Port: 12001}, ok)
	if err != nil {
		t.Fatal(err)
	}
	if a.UID != 1 || b.UID != 2 {
		t.Fatalf("uids %d %d, want 1 2", a.UID, b.UID)
	}
	taken := errors.New("taken")
	if _, err := s.Create(Database{Name: "a"}, func(_ *Database, all []Database) error {
		for _, d := range all {
			if d.Name == "a" {
				return taken
			}
		}
		return nil
	}); !errors.Is(err, taken) {
		t.Fatalf("check not applied: %v", err)
	}
	if _, err := s.Update(1, func(d *Database, others []Database) error {
		if len(others) != 1 || others[0].UID != 2 {
			t.Errorf("others = %+v", others)
		}
		d.MemorySize = 42
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(2, func(d *Database, _ []Database) error { d.Name = "changed"; return taken }); !errors.Is(err, taken) {
		t.Fatal("failed update applied")
	}
	if err := s.Delete(2); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Name != "a" || all[0].MemorySize != 42 || all[0].RedisPassword != "pa" {
		t.Fatalf("after reopen: %+v", all)
	}
	c, err := s.Create(Database{Name: "c"}, ok)
	if err != nil || c.UID != 3 {
		t.Fatalf("uid after reopen = %d, %v; uids are never reused", c.UID, err)
	}
}

// A second instance on the same data directory is refused with a message
// that says so, not a bare timeout.
func TestASecondOpenSaysTheFileIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	require.NoError(t, err)
	defer s.Close()
	_, err = Open(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "another redis-replicad serves this data directory")
}

// A damaged state file (cut short, or pages overwritten) is an error at
// Open that says so and what to do, and the file is left as it is: bbolt
// panicked on most of these, and the service died with a stack trace.
func TestADamagedStateFileIsAClearErrorAndLeftAsItIs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	s, err := Open(path)
	require.NoError(t, err)
	for n := range 60 {
		// Records of a few kB, as with client certificates: the file
		// takes many pages.
		_, err := s.Create(Database{Name: fmt.Sprint("db", n), ClientCertificates: []string{strings.Repeat("c", 3000)}},
			func(*Database, []Database) error { return nil })
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	whole, err := os.ReadFile(path)
	require.NoError(t, err)

	overwrite := func(from int, b byte) []byte {
		out := slices.Clone(whole)
		for i := from; i < len(out); i++ {
			out[i] = b
		}
		return out
	}
	cases := map[string][]byte{
		"cut after its meta pages": whole[:8192],
		"cut in the middle":        whole[:len(whole)/2],
		"cut in its first page":    whole[:100],
		"data pages overwritten":   overwrite(8192, 0xab),
		"data pages zeroed":        overwrite(8192, 0),
		"not a state file":         []byte("these are not the pages of a state file\n"),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			require.NoError(t, os.WriteFile(p, content, 0o600))
			s, err := Open(p)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			t.Log(err)
			assert.Contains(t, err.Error(), p)
			assert.Contains(t, err.Error(), "is damaged")
			assert.Contains(t, err.Error(), "restore it from a backup")
			after, rerr := os.ReadFile(p)
			require.NoError(t, rerr)
			assert.True(t, bytes.Equal(content, after), "the damaged file is left as it is")
		})
	}
}

// A change after the state file was deleted under the running service is
// refused: it would have gone to the deleted file, and been lost at the
// next start although answered as done. Reads still answer.
func TestChangesAfterTheFileIsDeletedAreRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	require.NoError(t, err)
	defer s.Close()
	d, err := s.Create(Database{Name: "a"}, func(*Database, []Database) error { return nil })
	require.NoError(t, err)
	require.NoError(t, os.Remove(path))

	_, err = s.Create(Database{Name: "b"}, func(*Database, []Database) error { return nil })
	require.ErrorIs(t, err, ErrFileGone)
	assert.Contains(t, err.Error(), path)
	_, err = s.Update(d.UID, func(d *Database, _ []Database) error { d.Name = "c"; return nil })
	require.ErrorIs(t, err, ErrFileGone)
	require.ErrorIs(t, s.Delete(d.UID), ErrFileGone)
	got, err := s.Get(d.UID)
	require.NoError(t, err)
	assert.Equal(t, "a", got.Name)

	// Nor is a file put in its place taken for it.
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	require.ErrorIs(t, s.SetNextPort(5), ErrFileGone)
}

// A change whose write to the state file fails (its disk full here, a
// tmpfs filled up) is an ErrCannotPersist that names the file, is not
// made, and a check's own refusal stays what it was.
func TestAChangeTheFileCannotTakeIsNotMade(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a tmpfs it mounts: not run with -short")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("this test fills a small disk, a tmpfs it mounts: run it as root (scripts/test.sh does): mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	path := filepath.Join(dir, "state.db")
	s, err := Open(path)
	require.NoError(t, err)
	defer func() { s.Close() }()
	d, err := s.Create(Database{Name: "a"}, func(*Database, []Database) error { return nil })
	require.NoError(t, err)
	f, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())

	// Records bigger than any page left: the write needs new ones.
	big := strings.Repeat("x", 256<<10)
	_, err = s.Update(d.UID, func(d *Database, _ []Database) error { d.Name = big; return nil })
	require.ErrorIs(t, err, ErrCannotPersist)
	assert.Contains(t, err.Error(), path)
	var unavailable interface{ Unavailable() bool }
	require.ErrorAs(t, err, &unavailable)
	got, err := s.Get(d.UID)
	require.NoError(t, err)
	assert.Equal(t, "a", got.Name, "the change that could not be written is not made")

	refused := errors.New("refused by the check")
	_, err = s.Update(d.UID, func(*Database, []Database) error { return refused })
	require.ErrorIs(t, err, refused)
	assert.NotErrorIs(t, err, ErrCannotPersist)

	// Once there is room, changes are written again, and kept.
	require.NoError(t, os.Remove(filepath.Join(dir, "filler")))
	_, err = s.Update(d.UID, func(d *Database, _ []Database) error { d.Name = big; return nil })
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s, err = Open(path)
	require.NoError(t, err)
	got, err = s.Get(d.UID)
	require.NoError(t, err)
	assert.Equal(t, big, got.Name)
}
