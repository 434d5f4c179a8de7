package storage

import (
	"io"
	"os"
)

// FS is the small slice of the filesystem the storage layer uses. It exists
// so tests can inject torn writes, fsync failures and full disks; production
// code passes nil and gets the operating system.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	RemoveAll(name string) error
	Rename(oldpath, newpath string) error
	MkdirAll(path string, perm os.FileMode) error
	ReadDir(name string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
}

// File is an open file. *os.File implements it; when the FS is the OS,
// FileRange.File exposes the *os.File for sendfile.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
}

// OSFS is the FS backed by the operating system.
type OSFS struct{}

func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // avoid a non-nil File holding a nil *os.File
	}
	return f, nil
}
func (OSFS) Remove(name string) error                     { return os.Remove(name) }
func (OSFS) RemoveAll(name string) error                  { return os.RemoveAll(name) }
func (OSFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (OSFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (OSFS) ReadDir(name string) ([]os.DirEntry, error)   { return os.ReadDir(name) }
func (OSFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }

// syncDir fsyncs a directory so created, renamed and removed entries survive
// a crash.
func syncDir(fsys FS, dir string) error {
	d, err := fsys.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return serr
	}
	return cerr
}

// datasync flushes a file's data (and the metadata needed to read it back).
// For OS files it uses fdatasync where available; other Files get Sync.
func datasync(f File) error {
	if of, ok := f.(*os.File); ok {
		return fdatasync(of)
	}
	return f.Sync()
}

// writeFileAtomic replaces name with data so that a crash leaves either the
// old or the new content: write a temp file, fsync it, rename it over name,
// fsync the directory.
func writeFileAtomic(fsys FS, dir, name string, data []byte) error {
	path := dir + string(os.PathSeparator) + name
	tmp := path + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(fsys, dir)
}

// readFile reads a whole (small) file through fsys.
func readFile(fsys FS, path string) ([]byte, error) {
	if _, ok := fsys.(OSFS); ok {
		if b, err, ok := readFileDirect(path); ok {
			return b, err
		}
	}
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, st.Size())
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return buf[:n], nil
}
