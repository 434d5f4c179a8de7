package cli

// gregor dump-log: kafka-dump-log.sh (Kafka's DumpLogSegments), offline, on
// the files of a log dir, which Gregor keeps in Kafka's formats. Output as
// Kafka 4.4's, line for line:
//
//	.log        "Log starting offset", a line per batch, with
//	            --deep-iteration a "| offset: ..." line per record, with
//	            --print-data-log its key and payload (UTF-8)
//	.index      "offset: N position: P" (mismatches with the log on stderr)
//	.timeindex  "timestamp: T offset: N" (mismatches on stderr)
//	.snapshot   producer state: a line per entry
//	.txnindex   aborted transactions
//
// --verify-index-only checks an index without printing it;
// --index-sanity-check checks only its shape. The decoders of Kafka's
// internal topics (--offsets-decoder, --transaction-log-decoder, ...) are not
// here: Kafka's own kafka-dump-log.sh reads Gregor's files for those.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type dumpLogOptions struct {
	files           string
	printData       bool
	deep            bool
	skipMeta        bool
	verifyOnly      bool
	sanityOnly      bool
	maxMessageSize  int32
	maxBytes        int32
	keyDecoder      string
	valueDecoder    string
	unsupported     map[string]*bool
	nonConsecutive  map[string][][2]int64
	indexMismatches map[string][][2]int64
}

func newDumpLogCommand() *cobra.Command {
	o := &dumpLogOptions{unsupported: map[string]*bool{}}
	cmd := &cobra.Command{
		Use:   "dump-log --files FILE[,FILE...] [--print-data-log] [--deep-iteration]",
		Short: "Print the batches and records of log segments and their indexes (kafka-dump-log.sh)",
		Long: "This tool helps to parse a log file and dump its contents to the console, useful for debugging a seemingly corrupt log segment.\n" +
			"It reads the files directly: run it where the log dir is.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.files, "files", "", "REQUIRED: the comma separated list of data and index log files to be dumped")
	f.BoolVar(&o.printData, "print-data-log", false, "print the records' keys and payloads (implies --deep-iteration)")
	f.BoolVar(&o.deep, "deep-iteration", false, "print every record, not only every batch")
	f.BoolVar(&o.skipMeta, "skip-record-metadata", false, "leave out each record's metadata")
	f.BoolVar(&o.verifyOnly, "verify-index-only", false, "verify an index against the log without printing it")
	f.BoolVar(&o.sanityOnly, "index-sanity-check", false, "check an index's shape only, as the broker does at start-up")
	f.Int32Var(&o.maxMessageSize, "max-message-size", 5*1024*1024, "size of the largest batch")
	f.Int32Var(&o.maxBytes, "max-bytes", math.MaxInt32, "read at most this many bytes of each .log file")
	f.StringVar(&o.keyDecoder, "key-decoder-class", "", "only Kafka's StringDecoder (the default) is available")
	f.StringVar(&o.valueDecoder, "value-decoder-class", "", "only Kafka's StringDecoder (the default) is available")
	for _, name := range []string{"offsets-decoder", "transaction-log-decoder", "cluster-metadata-decoder", "remote-log-metadata-decoder", "share-group-state-decoder"} {
		o.unsupported[name] = f.Bool(name, false, "not available in gregor: use Kafka's kafka-dump-log.sh on the same files")
	}
	return cmd
}

func (o *dumpLogOptions) run(cmd *cobra.Command) error {
	for name, set := range o.unsupported {
		if *set {
			return fmt.Errorf("--%s is not available in gregor dump-log; Kafka's kafka-dump-log.sh reads Gregor's files", name)
		}
	}
	for _, d := range []string{o.keyDecoder, o.valueDecoder} {
		if d != "" && d != "org.apache.kafka.tools.api.StringDecoder" && d != "kafka.serializer.StringDecoder" {
			return fmt.Errorf("decoder %s is not available in gregor dump-log (only StringDecoder)", d)
		}
	}
	if o.keyDecoder != "" || o.valueDecoder != "" {
		o.printData = true // as Kafka: a decoder means printing the data
	}
	if o.files == "" {
		return errors.New("Missing required argument \"[files]\"")
	}
	o.deep = o.deep || o.printData
	o.nonConsecutive = map[string][][2]int64{}
	o.indexMismatches = map[string][][2]int64{}
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	var tie timeIndexErrors
	for _, name := range strings.Split(o.files, ",") {
		fmt.Fprintf(out, "Dumping %s\n", filepath.Clean(name))
		ext := filepath.Ext(name)
		var err error
		switch ext {
		case ".log":
			err = o.dumpLog(out, name)
		case ".index":
			err = o.dumpIndex(out, name)
		case ".timeindex":
			err = o.dumpTimeIndex(out, name, &tie)
		case ".snapshot":
			err = dumpProducerSnapshot(out, errw, name)
		case ".txnindex":
			err = dumpTxnIndex(out, name)
		default:
			fmt.Fprintf(errw, "Ignoring unknown file %s\n", filepath.Clean(name))
		}
		if err != nil {
			return err
		}
	}
	for file, ms := range o.indexMismatches {
		fmt.Fprintf(errw, "Mismatches in :%s\n", file)
		for i := len(ms) - 1; i >= 0; i-- { // Kafka prepends: newest first
			fmt.Fprintf(errw, "  Index offset: %d, log offset: %d\n", ms[i][0], ms[i][1])
		}
	}
	tie.print(errw)
	for file, ps := range o.nonConsecutive {
		fmt.Fprintf(errw, "Non-consecutive offsets in %s\n", file)
		for i := len(ps) - 1; i >= 0; i-- {
			fmt.Fprintf(errw, "  %d is followed by %d\n", ps[i][0], ps[i][1])
		}
	}
	return nil
}

// baseOffsetOf is the offset a segment file's name starts with.
func baseOffsetOf(name string) (int64, error) {
	base := filepath.Base(name)
	n, err := strconv.ParseInt(base[:strings.IndexByte(base+".", '.')], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not a segment file name (want <offset>%s)", name, filepath.Ext(name))
	}
	return n, nil
}

func absPath(name string) string {
	if p, err := filepath.Abs(name); err == nil {
		return p
	}
	return name
}

// batchAt is a v2 batch header read from a log file, or magic < 2.
type batchAt struct {
	raw  []byte // the whole batch
	h    kmsg.RecordBatch
	size int64
}

var dumpCRC = crc32.MakeTable(crc32.Castagnoli)

// readBatches calls fn for each whole batch of the log file's first limit
// bytes, as Kafka's FileLogInputStream reads them, and returns the bytes
// they covered.
func readBatches(f *os.File, start, limit int64, fn func(pos int64, b *batchAt) (bool, error)) (int64, error) {
	if st, err := f.Stat(); err == nil {
		limit = min(limit, st.Size())
	}
	pos := start
	var hdr [17]byte
	for pos+17 < limit {
		if _, err := f.ReadAt(hdr[:], pos); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return pos - start, err
		}
		length := int64(int32(binary.BigEndian.Uint32(hdr[8:])))
		if length < 14 { // a v0 record's overhead: Kafka's CorruptRecordException
			return pos - start, fmt.Errorf("Record size %d is less than the minimum record overhead (14)", length)
		}
		size := 12 + length
		if pos > limit-size {
			break
		}
		b := &batchAt{raw: make([]byte, size), size: size}
		if _, err := f.ReadAt(b.raw, pos); err != nil {
			return pos - start, err
		}
		if hdr[16] == 2 {
			if err := b.h.ReadFrom(b.raw); err != nil {
				return pos - start, fmt.Errorf("batch at position %d: %v", pos, err)
			}
		} else {
			b.h.Magic = int8(hdr[16])
			b.h.FirstOffset = int64(binary.BigEndian.Uint64(hdr[:]))
		}
		more, err := fn(pos, b)
		if err != nil {
			return pos - start, err
		}
		pos += size
		if !more {
			break
		}
	}
	return pos - start, nil
}

var codecNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

func optionalLong(v int64, set bool) string {
	if !set {
		return "OptionalLong.empty"
	}
	return fmt.Sprintf("OptionalLong[%d]", v)
}

func timestampType(attrs int16) string {
	if attrs&0x08 != 0 {
		return "LogAppendTime"
	}
	return "CreateTime"
}

// addSequence is Kafka's DefaultRecordBatch.incrementSequence.
func addSequence(seq, delta int32) int32 {
	if seq < 0 {
		return -1
	}
	if seq > math.MaxInt32-delta {
		return delta - (math.MaxInt32 - seq) - 1
	}
	return seq + delta
}

// javaString decodes bytes as Java's new String(bytes, UTF_8) does: each
// byte that is not part of valid UTF-8 becomes U+FFFD.
func javaString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var s strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		s.WriteRune(r)
		b = b[n:]
	}
	return s.String()
}

func (o *dumpLogOptions) dumpLog(out io.Writer, name string) error {
	base, err := baseOffsetOf(name)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Log starting offset: %d\n", base)
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	limit := min(st.Size(), int64(o.maxBytes))
	dec := kgo.DefaultDecompressor()
	last := int64(-1)
	valid, err := readBatches(f, 0, limit, func(pos int64, b *batchAt) (bool, error) {
		h := &b.h
		if h.Magic < 2 {
			fmt.Fprintf(out, "offset: %d position: %d (magic %d: not decoded by gregor)\n", h.FirstOffset, pos, h.Magic)
			return true, nil
		}
		crcOK := crc32.Checksum(b.raw[21:], dumpCRC) == uint32(h.CRC)
		lastSeq := addSequence(h.FirstSequence, h.LastOffsetDelta)
		fmt.Fprintf(out, "baseOffset: %d lastOffset: %d count: %d baseSequence: %d lastSequence: %d producerId: %d producerEpoch: %d partitionLeaderEpoch: %d isTransactional: %t isControl: %t deleteHorizonMs: %s position: %d %s: %d size: %d magic: %d compresscodec: %s crc: %d isvalid: %t\n",
			h.FirstOffset, h.FirstOffset+int64(h.LastOffsetDelta), h.NumRecords, h.FirstSequence, lastSeq,
			h.ProducerID, h.ProducerEpoch, h.PartitionLeaderEpoch, h.Attributes&0x10 != 0, h.Attributes&0x20 != 0,
			optionalLong(h.FirstTimestamp, h.Attributes&0x40 != 0), pos, timestampType(h.Attributes), h.MaxTimestamp,
			b.size, h.Magic, codecName(h.Attributes), uint32(h.CRC), crcOK)
		if !o.deep {
			return true, nil
		}
		recs := h.Records
		if c := h.Attributes & 0x07; c != 0 {
			if recs, err = dec.Decompress(recs, kgo.CompressionCodecType(c)); err != nil {
				return false, fmt.Errorf("batch at position %d: %v", pos, err)
			}
		}
		control := h.Attributes&0x20 != 0
		for i := int32(0); i < h.NumRecords; i++ {
			var r kmsg.Record
			if err := r.ReadFrom(recs); err != nil {
				return false, fmt.Errorf("record %d of the batch at position %d: %v", i, pos, err)
			}
			recs = recs[min(len(recs), int(r.Length)+varintLen(int64(r.Length))):]
			off := h.FirstOffset + int64(r.OffsetDelta)
			if off != last+1 { // Kafka 4.4 counts from -1: a log not starting at 0 reports its first offset
				abs := absPath(name)
				o.nonConsecutive[abs] = append(o.nonConsecutive[abs], [2]int64{last, off})
			}
			last = off
			o.printRecord(out, h, &r, off, control)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if trailing := st.Size() - valid; trailing > 0 && o.maxBytes == math.MaxInt32 {
		fmt.Fprintf(out, "Found %d invalid bytes at the end of %s\n", trailing, filepath.Base(name))
	}
	return nil
}

func codecName(attrs int16) string {
	if c := int(attrs & 0x07); c < len(codecNames) {
		return codecNames[c]
	}
	return "unknown"
}

func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}

var controlTypes = map[int16]string{0: "ABORT", 1: "COMMIT", 2: "LEADER_CHANGE", 3: "SNAPSHOT_HEADER", 4: "SNAPSHOT_FOOTER", 5: "KRAFT_VERSION", 6: "KRAFT_VOTERS"}

func (o *dumpLogOptions) printRecord(out io.Writer, h *kmsg.RecordBatch, r *kmsg.Record, off int64, control bool) {
	var line strings.Builder
	prefix := "| "
	if !o.skipMeta {
		ts := h.FirstTimestamp + r.TimestampDelta64
		if h.Attributes&0x08 != 0 {
			ts = h.MaxTimestamp
		}
		keys := make([]string, len(r.Headers))
		for i, hd := range r.Headers {
			keys[i] = hd.Key
		}
		keySize, valueSize := -1, -1
		if r.Key != nil {
			keySize = len(r.Key)
		}
		if r.Value != nil {
			valueSize = len(r.Value)
		}
		fmt.Fprintf(&line, "%soffset: %d %s: %d keySize: %d valueSize: %d sequence: %d headerKeys: [%s]",
			prefix, off, timestampType(h.Attributes), ts, keySize, valueSize,
			addSequence(h.FirstSequence, r.OffsetDelta), strings.Join(keys, ","))
		prefix = " "
		if control && len(r.Key) >= 4 {
			typ := int16(binary.BigEndian.Uint16(r.Key[2:]))
			switch name := controlTypes[typ]; {
			case (typ == 0 || typ == 1) && len(r.Value) >= 6:
				fmt.Fprintf(&line, " endTxnMarker: %s coordinatorEpoch: %d", name, int32(binary.BigEndian.Uint32(r.Value[2:])))
			case name != "":
				fmt.Fprintf(&line, " controlType: %s(%d)", name, typ)
			default:
				fmt.Fprintf(&line, " controlType: UNKNOWN(%d)", typ)
			}
		}
	}
	if o.printData && !control {
		if r.Key != nil {
			fmt.Fprintf(&line, "%skey: %s", prefix, javaString(r.Key))
			prefix = " "
		}
		if r.Value != nil {
			fmt.Fprintf(&line, "%spayload: %s", prefix, javaString(r.Value))
		}
	}
	fmt.Fprintln(out, line.String())
}

// indexEntries reads an index file's fixed-size entries.
func indexEntries(name string, size int) ([][]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var es [][]byte
	for i := 0; i+size <= len(b); i += size {
		es = append(es, b[i:i+size])
	}
	return es, nil
}

func (o *dumpLogOptions) dumpIndex(out io.Writer, name string) error {
	base, err := baseOffsetOf(name)
	if err != nil {
		return err
	}
	es, err := indexEntries(name, 8)
	if err != nil {
		return err
	}
	if len(es) == 0 {
		fmt.Fprintf(out, "%s is empty.\n", filepath.Clean(name))
		return nil
	}
	if o.sanityOnly {
		if err := indexSanity(name, 8); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s passed sanity check.\n", filepath.Clean(name))
		return nil
	}
	logName := strings.TrimSuffix(name, ".index") + ".log"
	lf, err := os.Open(logName)
	if err != nil {
		return err
	}
	defer lf.Close()
	for i, e := range es {
		off := base + int64(binary.BigEndian.Uint32(e))
		pos := int64(binary.BigEndian.Uint32(e[4:]))
		if off == base && i > 0 {
			break // preallocated, never written
		}
		last := int64(-1)
		if _, err := readBatches(lf, pos, pos+int64(o.maxMessageSize), func(_ int64, b *batchAt) (bool, error) {
			last = b.h.FirstOffset + int64(b.h.LastOffsetDelta)
			return false, nil
		}); err != nil {
			return err
		}
		if last != off {
			abs := absPath(name)
			o.indexMismatches[abs] = append(o.indexMismatches[abs], [2]int64{off, last})
		}
		if !o.verifyOnly {
			fmt.Fprintf(out, "offset: %d position: %d\n", off, pos)
		}
	}
	return nil
}

// indexSanity is the shape check Kafka's --index-sanity-check makes: the
// file holds whole entries of size bytes. (The other half of Kafka's check,
// a last offset below the base offset, cannot happen with relative offsets
// read as unsigned.)
func indexSanity(name string, size int) error {
	st, err := os.Stat(name)
	if err != nil {
		return err
	}
	if st.Size()%int64(size) != 0 {
		return fmt.Errorf("Index file %s is corrupt, found %d bytes which is neither positive nor a multiple of %d.", filepath.Base(name), st.Size(), size)
	}
	return nil
}

// timeIndexErrors collects what Kafka's TimeIndexDumpErrors prints.
type timeIndexErrors struct {
	mismatches, outOfOrder, notFound [][3]any
}

func (t *timeIndexErrors) print(w io.Writer) {
	byFile := func(list [][3]any, head string, line string) {
		var files []string
		seen := map[string]bool{}
		for _, m := range list {
			if f := m[0].(string); !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
		for _, f := range files {
			if head != "" {
				fmt.Fprintf(w, head, f)
			}
			for _, m := range list {
				if m[0] == f {
					fmt.Fprintf(w, line, m[1], m[2])
				}
			}
		}
	}
	byFile(t.mismatches, "Found timestamp mismatch in :%s\n", "  Index timestamp: %d, log timestamp: %d\n")
	byFile(t.outOfOrder, "Found out of order timestamp in :%s\n", "  Index timestamp: %d, Previously indexed timestamp: %d\n")
	byFile(t.notFound, "The following indexed offsets are not found in :%s\n", "Indexed offset: %d, found log offset: %d\n")
}

func (o *dumpLogOptions) dumpTimeIndex(out io.Writer, name string, errs *timeIndexErrors) error {
	base, err := baseOffsetOf(name)
	if err != nil {
		return err
	}
	es, err := indexEntries(name, 12)
	if err != nil {
		return err
	}
	if o.sanityOnly {
		if err := indexSanity(name, 12); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s passed sanity check.\n", filepath.Clean(name))
		return nil
	}
	stem := strings.TrimSuffix(name, ".timeindex")
	idx, err := indexEntries(stem+".index", 8)
	if err != nil {
		return err
	}
	lf, err := os.Open(stem + ".log")
	if err != nil {
		return err
	}
	defer lf.Close()
	st, err := lf.Stat()
	if err != nil {
		return err
	}
	abs := absPath(name)
	prev := int64(-1)
	for i, e := range es {
		ts := int64(binary.BigEndian.Uint64(e))
		off := base + int64(binary.BigEndian.Uint32(e[8:]))
		if off == base && i > 0 {
			break
		}
		// The offset index's position for the largest indexed offset at
		// or below off, then the log from there.
		pos := int64(0)
		for j, ie := range idx {
			at := base + int64(binary.BigEndian.Uint32(ie))
			if (at == base && j > 0) || at > off {
				break
			}
			pos = int64(binary.BigEndian.Uint32(ie[4:]))
		}
		var found *batchAt
		if _, err := readBatches(lf, pos, st.Size(), func(_ int64, b *batchAt) (bool, error) {
			if b.h.FirstOffset+int64(b.h.LastOffsetDelta) >= off {
				found = b
				return false, nil
			}
			return true, nil
		}); err != nil {
			return err
		}
		switch {
		case found == nil:
			errs.notFound = append(errs.notFound, [3]any{abs, off, int64(-1)})
		case found.h.FirstOffset+int64(found.h.LastOffsetDelta) != off:
			errs.notFound = append(errs.notFound, [3]any{abs, off, found.h.FirstOffset + int64(found.h.LastOffsetDelta)})
		default:
			maxTS := int64(-1)
			if found.h.Attributes&0x08 != 0 {
				maxTS = found.h.MaxTimestamp
			} else {
				recs := found.h.Records
				if c := found.h.Attributes & 0x07; c != 0 {
					if recs, err = kgo.DefaultDecompressor().Decompress(recs, kgo.CompressionCodecType(c)); err != nil {
						return err
					}
				}
				for k := int32(0); k < found.h.NumRecords; k++ {
					var r kmsg.Record
					if err := r.ReadFrom(recs); err != nil {
						return err
					}
					recs = recs[min(len(recs), int(r.Length)+varintLen(int64(r.Length))):]
					maxTS = max(maxTS, found.h.FirstTimestamp+r.TimestampDelta64)
				}
			}
			if maxTS != ts {
				errs.mismatches = append(errs.mismatches, [3]any{abs, ts, maxTS})
			}
			if prev >= ts {
				errs.outOfOrder = append(errs.outOfOrder, [3]any{abs, ts, prev})
			}
		}
		if !o.verifyOnly {
			fmt.Fprintf(out, "timestamp: %d offset: %d\n", ts, off)
		}
		prev = ts
	}
	return nil
}

// dumpProducerSnapshot prints a producer state snapshot (Kafka's format:
// version, CRC-32C, then 46-byte entries).
func dumpProducerSnapshot(out, errw io.Writer, name string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if len(b) < 10 {
		fmt.Fprintf(errw, "Snapshot file %s is corrupt: %d bytes\n", name, len(b))
		return nil
	}
	if v := int16(binary.BigEndian.Uint16(b)); v != 1 {
		fmt.Fprintf(errw, "Snapshot contained an unknown file version %d\n", v)
		return nil
	}
	if want, got := binary.BigEndian.Uint32(b[2:]), crc32.Checksum(b[6:], dumpCRC); want != got {
		fmt.Fprintf(errw, "Snapshot is corrupt (CRC is no longer valid). Stored crc: %d. Computed crc: %d\n", want, got)
		return nil
	}
	n := int(int32(binary.BigEndian.Uint32(b[6:])))
	const size = 46
	for i, p := 0, b[10:]; i < n && len(p) >= size; i, p = i+1, p[size:] {
		pid := int64(binary.BigEndian.Uint64(p))
		epoch := int16(binary.BigEndian.Uint16(p[8:]))
		lastSeq := int32(binary.BigEndian.Uint32(p[10:]))
		lastOff := int64(binary.BigEndian.Uint64(p[14:]))
		delta := int32(binary.BigEndian.Uint32(p[22:]))
		ts := int64(binary.BigEndian.Uint64(p[26:]))
		coord := int32(binary.BigEndian.Uint32(p[34:]))
		txnFirst := int64(binary.BigEndian.Uint64(p[38:]))
		fmt.Fprintf(out, "producerId: %d producerEpoch: %d coordinatorEpoch: %d currentTxnFirstOffset: %s lastTimestamp: %d",
			pid, epoch, coord, optionalLong(txnFirst, txnFirst >= 0), ts)
		if lastOff >= 0 {
			first := lastSeq - delta
			if lastSeq < delta {
				first = math.MaxInt32 - (delta - lastSeq) + 1
			}
			fmt.Fprintf(out, " firstSequence: %d lastSequence: %d lastOffset: %d offsetDelta: %d timestamp: %d", first, lastSeq, lastOff, delta, ts)
		}
		fmt.Fprintln(out)
	}
	return nil
}

// dumpTxnIndex prints a .txnindex: 34-byte entries.
func dumpTxnIndex(out io.Writer, name string) error {
	es, err := indexEntries(name, 34)
	if err != nil {
		return err
	}
	for _, e := range es {
		fmt.Fprintf(out, "version: %d producerId: %d firstOffset: %d lastOffset: %d lastStableOffset: %d\n",
			int16(binary.BigEndian.Uint16(e)), int64(binary.BigEndian.Uint64(e[2:])), int64(binary.BigEndian.Uint64(e[10:])),
			int64(binary.BigEndian.Uint64(e[18:])), int64(binary.BigEndian.Uint64(e[26:])))
	}
	return nil
}
