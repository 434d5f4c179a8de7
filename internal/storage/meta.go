package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gregorhq/gregor/internal/config"
)

// MetaFile is the log dir's identity, in Kafka's format: a Java
// properties file written when the dir is formatted (`gregor storage
// format`, or the first `gregor serve` of a zero-configuration broker):
//
//	#
//	#<date>
//	node.id=1
//	directory.id=<uuid>
//	version=1
//	cluster.id=<uuid>
//
// Kafka refuses to start on a dir that belongs to another cluster or node;
// so does Gregor.
const MetaFile = "meta.properties"

// Meta is a log dir's meta.properties.
type Meta struct {
	Version     int
	ClusterID   string
	NodeID      int32
	DirectoryID string
}

// ErrNotFormatted: the log dir has no meta.properties.
var ErrNotFormatted = errors.New("storage: log dir is not formatted (no meta.properties)")

// ReadMeta reads dir's meta.properties (ErrNotFormatted if there is none).
func ReadMeta(dir string) (Meta, error) {
	path := filepath.Join(dir, MetaFile)
	props, err := config.ReadPropertiesFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Meta{}, ErrNotFormatted
	}
	if err != nil {
		return Meta{}, fmt.Errorf("storage: %w", err)
	}
	m := Meta{ClusterID: props["cluster.id"], DirectoryID: props["directory.id"]}
	if m.Version, err = strconv.Atoi(props["version"]); err != nil || m.Version < 0 || m.Version > 1 {
		return Meta{}, fmt.Errorf("storage: %s: version %q is not 0 or 1", path, props["version"])
	}
	id, err := strconv.ParseInt(props["node.id"], 10, 32)
	if err != nil {
		return Meta{}, fmt.Errorf("storage: %s: node.id %q is not a number", path, props["node.id"])
	}
	m.NodeID = int32(id)
	if m.ClusterID == "" {
		return Meta{}, fmt.Errorf("storage: %s has no cluster.id", path)
	}
	return m, nil
}

// WriteMeta writes dir's meta.properties atomically (temporary file,
// fsync, rename, directory fsync), creating dir if needed.
func WriteMeta(dir string, m Meta) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#\n#%s\n", time.Now().UTC().Format(time.UnixDate))
	fmt.Fprintf(&b, "node.id=%d\n", m.NodeID)
	if m.DirectoryID != "" {
		fmt.Fprintf(&b, "directory.id=%s\n", m.DirectoryID)
	}
	fmt.Fprintf(&b, "version=%d\ncluster.id=%s\n", m.Version, m.ClusterID)
	return writeFileAtomic(OSFS{}, dir, MetaFile, []byte(b.String()))
}
