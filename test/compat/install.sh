#!/usr/bin/env bash
# Installs what the compatibility suites need, on Debian 12 as root.
# Idempotent: a second run changes nothing and takes a few seconds.
#
#   kcat                 Debian package (librdkafka CLI; `kafkacat` is the old name)
#   kafka-python 2.0.2   the version the user's seed posts use
#     + python-snappy    kafka-python 2.0.2 does `import snappy` (python-snappy >= 0.7 runs on cramjam)
#     + lz4              `import lz4.frame`
#     + zstandard        `import zstandard` (2.0.2 supports zstd for brokers >= 2.1)
#     + msgpack          the seed's msgpack serializer example
#   kafka-python 3.0.12  what `pip install kafka-python` installs today (the newest on
#                        PyPI), with the same codecs, in a venv of its own:
#                        test/compat/.venv-kafka-python3 (git-ignored); run.sh runs the
#                        kafka-python suites a second time under its python, and
#                        txn_kafka_python.py (transactions: 2.0.2 has none)
#   confluent-kafka      librdkafka Python client (wheel bundles librdkafka with all codecs)
#   java, mvn            for java/run.sh (Kafka's CLI tools and Java client)
#   burrow               Debian package, Burrow 1.2.1 (LinkedIn's lag monitor) for burrow.py
#   zookeeper            Debian package; Burrow 1.2 keeps its own state in ZooKeeper,
#                        burrow.py runs one on loopback from /usr/share/java/zookeeper.jar
#   sarama/              Go module of its own (IBM/sarama): downloads its modules and
#                        builds it once, so run.sh's `go run` starts from the cache
#                        (needs go, which building the broker needs anyway)
#   prometheus           Debian package (server and promtool) for test/metrics: a real
#                        Prometheus scrapes gregor serve; promtool checks the exposition
#   chromium             Debian package, headless, for test/console (chromedp drives the
#                        web console and saves screenshots)
#   kafkajs/             `npm ci` from package-lock.json: kafkajs, kafkajs-snappy,
#                        kafkajs-lz4 (its lz4 dependency builds a native addon with
#                        node-gyp: g++, make); needs node >= 20 and npm
#
# Python packages go to the python3 first on PATH via `python3 -m pip`:
# Debian's python3-kafka would install for /usr/bin/python3 only.
set -euo pipefail

PY_PACKAGES=(
	kafka-python==2.0.2
	python-snappy==0.7.3
	lz4==4.4.5
	zstandard==0.25.0
	msgpack==1.2.4
	confluent-kafka==2.16.1
)
# The venv for kafka-python 3.x: the codec pins are the ones above.
KP3_VERSION=3.0.12
KP3_PACKAGES=(
	kafka-python==$KP3_VERSION
	python-snappy==0.7.3
	lz4==4.4.5
	zstandard==0.25.0
	msgpack==1.2.4
)

if [[ $(id -u) -ne 0 ]]; then
	echo "install.sh: must run as root (apt-get)" >&2
	exit 1
fi

# ---- kcat
if command -v kcat >/dev/null || command -v kafkacat >/dev/null; then
	echo "install.sh: kcat present"
else
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt_updated=1
	if apt-cache show kcat >/dev/null 2>&1; then
		apt-get install -y -q kcat
	else
		apt-get install -y -q kafkacat
	fi
fi

# ---- Python packages
PY=python3
echo "install.sh: python packages for $(command -v $PY) ($($PY --version 2>&1))"
pip_args=(--disable-pip-version-check --no-input -q)
# A Debian system python is "externally managed" (PEP 668) and refuses pip
# installs; this script owns the machine's test tooling, so override that.
if $PY -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) else 1)'; then
	pip_args+=(--break-system-packages)
fi
if ! $PY -m pip --version >/dev/null 2>&1; then
	[[ -n "${apt_updated:-}" ]] || { apt-get update -q; apt_updated=1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip
fi
PIP_ROOT_USER_ACTION=ignore $PY -m pip install "${pip_args[@]}" "${PY_PACKAGES[@]}"

# ---- kafka-python 3.x in its own venv (the same python3, so the same codecs build)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KP3_VENV=$HERE/.venv-kafka-python3
kp3_ok() {
	"$KP3_VENV/bin/python" - "$KP3_VERSION" <<'EOF' 2>/dev/null
import sys, kafka, kafka.codec as c, msgpack
assert kafka.__version__ == sys.argv[1], kafka.__version__
# txn_kafka_python.py needs the transactional producer (kafka-python >= 2.1).
assert hasattr(kafka.KafkaProducer, "init_transactions")
assert c.has_gzip() and c.has_snappy() and c.has_lz4() and c.has_zstd()
EOF
}
if kp3_ok; then
	echo "install.sh: $KP3_VENV has kafka-python $KP3_VERSION"
else
	# A venv without a working pip (its base python was removed, or an
	# earlier `python3 -m venv` stopped half-way) is made anew. On Debian's
	# own python3, `-m venv` needs the python3-venv package (ensurepip).
	if [[ -d "$KP3_VENV" ]] && ! "$KP3_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
		rm -rf "$KP3_VENV"
	fi
	if [[ ! -d "$KP3_VENV" ]] && ! $PY -m venv "$KP3_VENV"; then
		rm -rf "$KP3_VENV"
		[[ -n "${apt_updated:-}" ]] || { apt-get update -q; apt_updated=1; }
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
		$PY -m venv "$KP3_VENV"
	fi
	PIP_ROOT_USER_ACTION=ignore "$KP3_VENV/bin/python" -m pip install \
		--disable-pip-version-check --no-input -q "${KP3_PACKAGES[@]}"
	kp3_ok || { echo "install.sh: $KP3_VENV: kafka-python $KP3_VERSION or a codec does not load" >&2; exit 1; }
	echo "install.sh: $KP3_VENV: kafka-python $KP3_VERSION (gzip snappy lz4 zstd)"
fi

# ---- Prometheus (with promtool) and Chromium for test/metrics and test/console
for pkg in prometheus chromium; do
	if command -v "$pkg" >/dev/null; then
		echo "install.sh: $pkg present"
	else
		[[ -n "${apt_updated:-}" ]] || { apt-get update -q; apt_updated=1; }
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg"
	fi
done

# ---- Java + Maven for the Java suite (java/run.sh resolves its own jars)
if ! command -v java >/dev/null; then
	[[ -n "${apt_updated:-}" ]] || { apt-get update -q; apt_updated=1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q default-jre-headless
fi
if ! command -v mvn >/dev/null; then
	[[ -n "${apt_updated:-}" ]] || { apt-get update -q; apt_updated=1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q maven
fi

# ---- Burrow and the ZooKeeper it needs (burrow.py starts and stops both)
if ! command -v Burrow >/dev/null || [[ ! -f /usr/share/java/zookeeper.jar ]]; then
	[[ -n "${apt_updated:-}" ]] || { apt-get update -q; apt_updated=1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends burrow zookeeper
else
	echo "install.sh: Burrow and zookeeper present"
fi

# ---- sarama suite (test/compat/sarama, its own go.mod)
if ! command -v go >/dev/null; then
	echo "install.sh: go not found (the broker and the sarama suite need it)" >&2
	exit 1
fi
(cd "$HERE/sarama" && go mod download && go build -o /dev/null .)
echo "install.sh: sarama suite $(cd "$HERE/sarama" && go list -m -f '{{.Version}}' github.com/IBM/sarama)"

# ---- kafkajs suite (test/compat/kafkajs): node_modules exactly as locked
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "install.sh: node and npm not found (the kafkajs suite needs them)" >&2
	exit 1
fi
kafkajs_ok() {
	(cd "$HERE/kafkajs" && node -e '
		const v = require("kafkajs/package.json").version
		if (v !== require("./package.json").dependencies.kafkajs) throw new Error("kafkajs " + v)
		require("kafkajs-snappy")
		const LZ4 = require("kafkajs-lz4") // loads the native lz4 addon
		const c = new LZ4().codec()
		c.compress({ buffer: Buffer.from("x") }).then(b => c.decompress(b)).then(b => {
			if (b.toString() !== "x") throw new Error("lz4 round trip")
			console.log("install.sh: kafkajs " + v + " (gzip, snappy, lz4)")
		})' 2>/dev/null)
}
if ! kafkajs_ok; then
	if ! command -v g++ >/dev/null || ! command -v make >/dev/null; then
		[[ -n "${apt_updated:-}" ]] || { apt-get update -q; apt_updated=1; }
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++ make
	fi
	(cd "$HERE/kafkajs" && npm ci --no-audit --no-fund)
	kafkajs_ok || { echo "install.sh: kafkajs packages do not load after npm ci" >&2; exit 1; }
fi

# ---- verify: every codec kafka-python and librdkafka will be asked for
$PY - <<'EOF'
import kafka, kafka.codec as c, confluent_kafka, msgpack
assert kafka.__version__ == "2.0.2", kafka.__version__
missing = [n for n, ok in (("snappy", c.has_snappy()), ("lz4", c.has_lz4()), ("zstd", c.has_zstd())) if not ok]
assert not missing, "kafka-python codecs missing: %s" % missing
feats = confluent_kafka.libversion()
print("install.sh: kafka-python %s (gzip snappy lz4 zstd), confluent-kafka %s / librdkafka %s"
      % (kafka.__version__, confluent_kafka.__version__, feats[0]))
EOF
KCAT=$(command -v kcat || command -v kafkacat)
"$KCAT" -V 2>&1 | grep -q 'zstd' || { echo "install.sh: $KCAT lacks zstd" >&2; exit 1; }
echo "install.sh: $("$KCAT" -V 2>&1 | grep -m1 Version)"
echo "install.sh: burrow $(dpkg-query -W -f='${Version}' burrow), zookeeper $(dpkg-query -W -f='${Version}' zookeeper)"
