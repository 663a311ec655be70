package store

import (
	"errors"
	"path/filepath"
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
