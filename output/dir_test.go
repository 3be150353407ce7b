package output

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLocalStoreWritesNoSidecars: a local directory holds exactly the objects,
// with size, checksum and origin as extended attributes of each file.
func TestLocalStoreWritesNoSidecars(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if !s.dir.xattrs {
		t.Skip("the test directory's file system keeps no user extended attributes")
	}
	org := Origin{Job: "J1", Item: "T1_2024-01-31", Request: "r1"}
	if _, err := s.Put(ctx, "J1/T1/2024-01-31/default.tif", strings.NewReader("abc"), PutOptions{Origin: org}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "J1/manifest.json", strings.NewReader("{}"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got := regularFiles(t, root)
	slices.Sort(got)
	if want := []string{"J1/T1/2024-01-31/default.tif", "J1/manifest.json"}; !slices.Equal(got, want) {
		t.Errorf("files under the root = %v; want only %v (no sidecars, no temp files)", got, want)
	}
	p := filepath.Join(root, "J1", "T1", "2024-01-31", "default.tif")
	// sha256("abc") is the FIPS 180-2 example digest.
	want := map[string]string{
		MetaSHA256:  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		MetaSize:    "3",
		MetaOrigin:  "J1/T1_2024-01-31",
		MetaRequest: "r1",
	}
	for k, v := range want {
		if got, err := getXattr(p, k); err != nil || got != v {
			t.Errorf("xattr %s = %q, %v; want %q", k, got, err, v)
		}
	}
	obj, ok, err := s.Exists(ctx, "J1/T1/2024-01-31/default.tif")
	if err != nil || !ok || obj.Origin != org || obj.SHA256 != want[MetaSHA256] {
		t.Errorf("Exists = %+v, %v, %v; want complete with origin %+v", obj, ok, err, org)
	}
}

// TestLocalStoreWithoutXattrs: where the file system keeps no extended
// attributes, a file is complete as soon as it is visible and its checksum is
// computed by reading it.
func TestLocalStoreWithoutXattrs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	s.dir.xattrs = false
	if _, err := s.Put(ctx, "a/b.tif", strings.NewReader("abc"), PutOptions{Origin: Origin{Job: "J", Item: "i"}}); err != nil {
		t.Fatal(err)
	}
	obj, ok, err := s.Exists(ctx, "a/b.tif")
	if err != nil || !ok || obj.SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" || !obj.Origin.IsZero() {
		t.Errorf("Exists = %+v, %v, %v; want complete, sha256(abc), no origin", obj, ok, err)
	}
	if got := regularFiles(t, root); !slices.Equal(got, []string{"a/b.tif"}) {
		t.Errorf("files = %v; want only a/b.tif", got)
	}
}

func TestPutCollisions(t *testing.T) {
	ctx := context.Background()
	a := Origin{Job: "J1", Item: "T1_2024-01-01", Request: "ra"}
	stores := openStores(t)
	for _, ts := range stores {
		t.Run(ts.name, func(t *testing.T) {
			key := "J1/out.tif"
			if _, err := ts.store.Put(ctx, key, strings.NewReader("first"), PutOptions{Origin: a}); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name    string
				o       Origin
				replace bool
				collide bool
			}{
				{"same item re-run", a, false, false},
				{"other item of the job", Origin{Job: "J1", Item: "T2_2024-01-01", Request: "rb"}, false, true},
				{"other item of the job, overwrite", Origin{Job: "J1", Item: "T2_2024-01-01", Request: "rb"}, true, true},
				{"other job, no overwrite", Origin{Job: "J2", Item: "T1_2024-01-01", Request: "rc"}, false, true},
				{"other job, same request", Origin{Job: "J2", Item: "T1_2024-01-01", Request: "ra"}, false, false},
			}
			for _, tt := range tests {
				_, err := ts.store.Put(ctx, key, strings.NewReader("second"), PutOptions{Origin: tt.o, ReplaceOtherJobs: tt.replace})
				var ce *CollisionError
				if got := errors.As(err, &ce); got != tt.collide {
					t.Errorf("%s: Put error = %v; want collision %v", tt.name, err, tt.collide)
					continue
				}
				if tt.collide {
					msg := err.Error()
					for _, w := range []string{key, "item T1_2024-01-01 of job J1", "item " + tt.o.Item + " of job " + tt.o.Job} {
						if !strings.Contains(msg, w) {
							t.Errorf("%s: message %q does not name %q", tt.name, msg, w)
						}
					}
					if got := readAll(t, ts.store, key); string(got) != "first" && string(got) != "second" {
						t.Errorf("%s: content %q", tt.name, got)
					}
				}
				// Put back the first item's object for the next case.
				if _, err := ts.store.Put(ctx, key, strings.NewReader("first"), PutOptions{Origin: a, ReplaceOtherJobs: true}); err != nil {
					t.Fatal(err)
				}
			}
			// A refused Put leaves the first item's bytes in place.
			_, err := ts.store.Put(ctx, key, strings.NewReader("other"), PutOptions{Origin: Origin{Job: "J1", Item: "x", Request: "rx"}})
			if err == nil {
				t.Fatal("colliding Put succeeded")
			}
			if got := readAll(t, ts.store, key); string(got) != "first" {
				t.Errorf("after a refused Put the key holds %q; want %q", got, "first")
			}
			// PutIfAbsent: the same item skips, another item collides.
			if _, written, err := ts.store.PutIfAbsent(ctx, key, strings.NewReader("x"), PutOptions{Origin: a}); err != nil || written {
				t.Errorf("PutIfAbsent(same item) = %v, %v; want skipped", written, err)
			}
			var ce *CollisionError
			if _, _, err := ts.store.PutIfAbsent(ctx, key, strings.NewReader("x"), PutOptions{Origin: Origin{Job: "J1", Item: "y"}}); !errors.As(err, &ce) {
				t.Errorf("PutIfAbsent(other item) error = %v; want a CollisionError", err)
			}
		})
	}
}

// writerHelperEnv makes the test binary a writer that a test kills: it puts a
// body into the store at the variable's value, prints "writing" once half of it
// is in the temp file, then blocks until killed.
const writerHelperEnv = "SHFLEET_OUTPUT_TEST_WRITER"

func TestMain(m *testing.M) {
	if root := os.Getenv(writerHelperEnv); root != "" {
		runWriterHelper(root)
		return
	}
	os.Exit(m.Run())
}

func runWriterHelper(root string) {
	s, err := Open(context.Background(), root)
	if err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(3)
	}
	// 1 MiB, then a reader that never ends.
	body := io.MultiReader(bytes.NewReader(payload(1<<20)), readerFunc(func([]byte) (int, error) {
		os.Stdout.WriteString("writing\n")
		time.Sleep(time.Hour) // until SIGKILL
		return 0, nil
	}))
	_, err = s.Put(context.Background(), "job/T1/2024-01-31/default.tif", body, PutOptions{Origin: Origin{Job: "job", Item: "T1_2024-01-31"}})
	os.Stderr.WriteString("Put returned: " + errString(err))
	os.Exit(4)
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestKilledWriterLeavesNothingVisible kills a writer process (SIGKILL) in the
// middle of a file: no object appears under the key, only the writer's hidden
// temp file remains, RemoveStale removes it, and the next Put of the key works.
func TestKilledWriterLeavesNothingVisible(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for round := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), writerHelperEnv+"="+root)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "writing\n" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("round %d: helper said %q, %v (stderr %q)", round, line, err, stderr.String())
		}
		// The temp file holds the first MiB while the writer is alive.
		tmp := filepath.Join(root, "job", "T1", "2024-01-31", ".default.tif"+TempSuffix)
		if fi, err := os.Stat(tmp); err != nil || fi.Size() != 1<<20 {
			t.Errorf("round %d: temp file while writing: %v, %v; want 1048576 bytes", round, fi, err)
		}
		// A sweep while the writer lives must not touch its file.
		s, err := Open(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.RemoveStale(ctx); err != nil || n != 0 {
			t.Errorf("round %d: RemoveStale with a live writer = %d, %v; want 0", round, n, err)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		// Nothing under the key; the only file is the dead writer's hidden temp.
		if _, err := s.Stat(ctx, "job/T1/2024-01-31/default.tif"); !errors.Is(err, ErrNotExist) {
			t.Errorf("round %d: Stat after the kill = %v; want ErrNotExist", round, err)
		}
		files := regularFiles(t, root)
		if !slices.Equal(files, []string{"job/T1/2024-01-31/.default.tif" + TempSuffix}) {
			t.Errorf("round %d: files after the kill = %v; want only the hidden temp file", round, files)
		}
		if round == 0 {
			// Worker start: the sweep removes it.
			if n, err := s.RemoveStale(ctx); err != nil || n != 1 {
				t.Errorf("RemoveStale = %d, %v; want 1", n, err)
			}
			if files := regularFiles(t, root); len(files) != 0 {
				t.Errorf("files after RemoveStale = %v; want none", files)
			}
			continue
		}
		// Next put of the key: it takes over the dead writer's temp file.
		data := payload(5000)
		if _, err := s.Put(ctx, "job/T1/2024-01-31/default.tif", bytes.NewReader(data), PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if files := regularFiles(t, root); !slices.Equal(files, []string{"job/T1/2024-01-31/default.tif"}) {
			t.Errorf("files after the next Put = %v; want only the object", files)
		}
		if got := readAll(t, s, "job/T1/2024-01-31/default.tif"); !bytes.Equal(got, data) {
			t.Errorf("next Put stored %d bytes that differ from the %d written", len(got), len(data))
		}
	}
}

// TestConcurrentWritersOfOneKeyTakeTurns: writers of one key wait for the temp
// file's lock; both commit whole files, the last one wins, no temp file remains.
func TestConcurrentWritersOfOneKeyTakeTurns(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, "k.bin", io.MultiReader(strings.NewReader("aaaa"), readerFunc(func([]byte) (int, error) {
			<-release
			return 0, io.EOF
		})), PutOptions{})
		done <- err
	}()
	tmp := filepath.Join(root, ".k.bin"+TempSuffix)
	for i := 0; ; i++ {
		if fi, err := os.Stat(tmp); err == nil && fi.Size() == 4 {
			break
		}
		if i > 1000 {
			t.Fatal("first writer never wrote its temp file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, "k.bin", strings.NewReader("bbbbbb"), PutOptions{})
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("second writer finished (%v) while the first held the key", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, "k.bin"); string(got) != "bbbbbb" {
		t.Errorf("k.bin = %q; want the second writer's %q", got, "bbbbbb")
	}
	if files := regularFiles(t, root); !slices.Equal(files, []string{"k.bin"}) {
		t.Errorf("files = %v; want only k.bin", files)
	}
}

// TestOpenRemovesDeadSpoolFiles: a bucket store's spool files that a dead
// process left (nobody holds their lock) go when the next store opens; other
// files in the spool directory stay.
func TestOpenRemovesDeadSpoolFiles(t *testing.T) {
	spool := t.TempDir()
	for _, name := range []string{"shfleet-output-123.part", "unrelated.part"} {
		if err := os.WriteFile(filepath.Join(spool, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Config{SpoolDir: spool}.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := regularFiles(t, spool); !slices.Equal(got, []string{"unrelated.part"}) {
		t.Errorf("spool after Open = %v; want only unrelated.part", got)
	}
}
