package cli

// gregor delete-records: kafka-delete-records.sh (Kafka's
// DeleteRecordsCommand). DeleteRecords (key 21) for the partitions of a
// JSON file,
//
//	{"partitions": [{"topic": "foo", "partition": 1, "offset": 1}], "version": 1}
//
// where offset -1 means the high watermark. Output as Kafka 4.4, a line
// per partition (in no particular order in Kafka, a hash map; sorted here):
//
//	Executing records delete operation
//	Records delete operation completed:
//	partition: foo-1	low_watermark: 1
//	partition: foo-2	error: org.apache.kafka.common.errors.OffsetOutOfRangeException: ...

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type deleteRecordsOptions struct {
	conn     connFlags
	jsonFile string
}

func newDeleteRecordsCommand() *cobra.Command {
	o := &deleteRecordsOptions{}
	cmd := &cobra.Command{
		Use:   "delete-records --offset-json-file FILE",
		Short: "Delete records before an offset (kafka-delete-records.sh)",
		Long:  "This tool helps to delete records of the given partitions down to the specified offset.",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	o.conn.AddFlags(f, "command-config")
	f.StringVar(&o.jsonFile, "offset-json-file", "", "REQUIRED: the JSON file with offset per partition: "+
		`{"partitions": [{"topic": "foo", "partition": 1, "offset": 1}], "version": 1}`)
	return cmd
}

// deleteRecordsEntry is one partition of the offset JSON file.
type deleteRecordsEntry struct {
	Topic     *string `json:"topic"`
	Partition *int32  `json:"partition"`
	Offset    *int64  `json:"offset"`
}

func readDeleteRecordsJSON(path string) (map[string]map[int32]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Version    *int                  `json:"version"`
		Partitions *[]deleteRecordsEntry `json:"partitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, errors.New("The input string is not a valid JSON")
	}
	if doc.Version != nil && *doc.Version != 1 {
		return nil, fmt.Errorf("Not supported version field value %d", *doc.Version)
	}
	if doc.Partitions == nil {
		return nil, errors.New("Missing partitions field")
	}
	out := map[string]map[int32]int64{}
	var dups []string
	for _, e := range *doc.Partitions {
		switch {
		case e.Topic == nil:
			return nil, errors.New("No such field exists: `topic`")
		case e.Partition == nil:
			return nil, errors.New("No such field exists: `partition`")
		case e.Offset == nil:
			return nil, errors.New("No such field exists: `offset`")
		}
		if out[*e.Topic] == nil {
			out[*e.Topic] = map[int32]int64{}
		}
		if _, dup := out[*e.Topic][*e.Partition]; dup {
			dups = append(dups, fmt.Sprintf("%s-%d", *e.Topic, *e.Partition))
			continue
		}
		out[*e.Topic][*e.Partition] = *e.Offset
	}
	if len(dups) > 0 {
		sort.Strings(dups)
		return nil, fmt.Errorf("Offset json file contains duplicate topic partitions: %s", strings.Join(dups, ","))
	}
	return out, nil
}

func (o *deleteRecordsOptions) run(cmd *cobra.Command) error {
	if o.jsonFile == "" {
		return errors.New("Missing required option(s): offset-json-file")
	}
	want, err := readDeleteRecordsJSON(o.jsonFile)
	if err != nil {
		return err
	}
	ctx, cancel := adminContext(cmd)
	defer cancel()
	adm, err := newAdmin(ctx, cmd, &o.conn)
	if err != nil {
		return err
	}
	defer adm.Close()
	w := cmd.OutOrStdout()
	fmt.Fprintln(w, "Executing records delete operation")

	// DeleteRecords goes to each partition's leader: find them first.
	topics := make([]string, 0, len(want))
	for t := range want {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return err
	}
	results := map[string]string{}
	fail := func(tp string, code int16, msg string) {
		if msg == "" {
			if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok {
				msg = e.Description
			}
		}
		results[tp] = fmt.Sprintf("error: %s: %s", javaException(code), msg)
	}
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = int32(adminTimeout.Milliseconds())
	for _, t := range topics {
		td := md.Topics[t]
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = t
		for p, off := range want[t] {
			tp := fmt.Sprintf("%s-%d", t, p)
			if _, ok := td.Partitions[p]; td.Err != nil || !ok {
				code := kerr.UnknownTopicOrPartition.Code
				if ke := (*kerr.Error)(nil); errors.As(td.Err, &ke) {
					code = ke.Code
				}
				fail(tp, code, "")
				continue
			}
			rp := kmsg.NewDeleteRecordsRequestTopicPartition()
			rp.Partition, rp.Offset = p, off
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(rt.Partitions) > 0 {
			req.Topics = append(req.Topics, rt)
		}
	}
	if len(req.Topics) > 0 {
		for _, sh := range adm.cl.RequestSharded(ctx, req) {
			if sh.Err != nil {
				if req, ok := sh.Req.(*kmsg.DeleteRecordsRequest); ok {
					for _, rt := range req.Topics {
						for _, rp := range rt.Partitions {
							results[fmt.Sprintf("%s-%d", rt.Topic, rp.Partition)] = "error: " + sh.Err.Error()
						}
					}
				}
				continue
			}
			for _, rt := range sh.Resp.(*kmsg.DeleteRecordsResponse).Topics {
				for _, rp := range rt.Partitions {
					tp := fmt.Sprintf("%s-%d", rt.Topic, rp.Partition)
					if rp.ErrorCode != 0 {
						fail(tp, rp.ErrorCode, "")
						continue
					}
					results[tp] = fmt.Sprintf("low_watermark: %d", rp.LowWatermark)
				}
			}
		}
	}
	fmt.Fprintln(w, "Records delete operation completed:")
	tps := make([]string, 0, len(results))
	for tp := range results {
		tps = append(tps, tp)
	}
	sort.Strings(tps)
	for _, tp := range tps {
		fmt.Fprintf(w, "partition: %s\t%s\n", tp, results[tp])
	}
	return nil
}
