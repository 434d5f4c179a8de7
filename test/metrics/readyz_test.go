package metrics

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gregorhq/gregor/test/testenv"
)

// /readyz says "not ready" while a large log dir is still loading, and
// /healthz says the process is alive meanwhile: the HTTP listener comes
// up before the log dir is opened.
func TestReadyzWhileLogDirLoads(t *testing.T) {
	first := testenv.Serve(t)
	first.Run(t, "topics", "--bootstrap-server", first.Addr, "--create", "--topic", "wide", "--partitions", "2000")
	first.Stop()

	httpAddr := testenv.FreeAddr(t)
	began := time.Now()
	testenv.Start(t, "gregor-restart", first.Bin, "serve", "--data-dir", first.Dir, "--listeners", "PLAINTEXT://"+testenv.FreeAddr(t),
		"--http-addr", httpAddr)
	var sawLoading, sawLive bool
	for {
		if time.Since(began) > time.Minute {
			t.Fatal("never ready")
		}
		code, body := probe("http://" + httpAddr + "/readyz")
		if code == 200 {
			break
		}
		if code == 503 && strings.Contains(body, "loading") {
			sawLoading = true
			if c, _ := probe("http://" + httpAddr + "/healthz"); c == 200 {
				sawLive = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("ready %s after start", time.Since(began).Round(time.Millisecond))
	if !sawLoading || !sawLive {
		t.Errorf("while 2000 partitions loaded: /readyz said loading %v, /healthz alive %v; want both", sawLoading, sawLive)
	}
}

func probe(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
