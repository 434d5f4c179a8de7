package broker

// InitProducerId (key 22), versions 0-5.
//
// Idempotent (non-transactional) producers get a fresh producer id at epoch
// 0 on every call, as in Kafka: the id and epoch a v3+ request carries are
// only meaningful to a transaction coordinator. Producer ids are unique
// across restarts (producerIDs persists a high-water block).
//
// Transactions are not implemented yet: a request with a transactional id
// gets UNSUPPORTED_VERSION, a non-retriable error, rather than an id that
// the rest of the transaction protocol could not honour.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(22, 0, 5, handleInitProducerID)
}

func handleInitProducerID(c *conn, v int16, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp
	}
	id, err := c.b.pids.next()
	if err != nil {
		c.log.Error("allocating producer id failed", "err", err)
		resp.ErrorCode = kerr.UnknownServerError.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

// producerIDs hands out producer ids. The end of the current block is
// persisted before any id in it is used, so a restart resumes past every id
// ever handed out without writing per id.
type producerIDs struct {
	mu       sync.Mutex
	path     string
	nextID   int64
	blockEnd int64
}

const producerIDBlock = 1000

const producerIDsFile = "gregor-producer-ids"

func openProducerIDs(dir string) (*producerIDs, error) {
	p := &producerIDs{path: filepath.Join(dir, producerIDsFile)}
	data, err := os.ReadFile(p.path)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, err
	default:
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return nil, err
		}
		p.nextID, p.blockEnd = n, n
	}
	return p, nil
}

func (p *producerIDs) next() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nextID >= p.blockEnd {
		end := p.nextID + producerIDBlock
		if err := writeFileAtomic(p.path, []byte(strconv.FormatInt(end, 10)+"\n")); err != nil {
			return -1, err
		}
		p.blockEnd = end
	}
	id := p.nextID
	p.nextID++
	return id, nil
}
