package gregor.compat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Kafka's Java consumer reads a compacted partition from the beginning to
 * its end offset across the offset gaps compaction leaves, and sees the
 * latest value of every key last.
 *
 * <p>Usage: {@code CompactCompat bootstrap topic expected-file}. The file
 * (written by test/compat/compact_suite.py) has one line per key:
 * {@code key TAB V value} for a key whose last record must carry that
 * value, {@code key TAB D} for a deleted key, whose last record, if any,
 * must be a tombstone. Partition 0 only. Prints PASS or FAIL per check and
 * ends with "N passed, N failed"; exits 1 if a check failed.
 */
public final class CompactCompat {
    private static int passed;
    private static int failed;

    private static void result(String name, String failure) {
        if (failure == null) {
            passed++;
            System.out.println("PASS " + name);
        } else {
            failed++;
            System.out.println("FAIL " + name + ": " + failure);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: CompactCompat bootstrap topic expected-file");
            System.exit(2);
        }
        String bootstrap = args[0];
        TopicPartition tp = new TopicPartition(args[1], 0);
        Map<String, String> want = new HashMap<>(); // value, or null for a deleted key
        for (String line : Files.readAllLines(Path.of(args[2]), StandardCharsets.UTF_8)) {
            String[] f = line.split("\t", 3);
            if (f.length >= 2) {
                want.put(f[0], f[1].equals("V") ? (f.length == 3 ? f[2] : "") : null);
            }
        }

        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        // Small fetches: many round trips, each starting at an offset the
        // previous fetch's gaps decided.
        p.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "65536");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "200");

        Map<String, ConsumerRecord<String, String>> last = new HashMap<>();
        long records = 0;
        long prev = -1;
        String order = null;
        long begin;
        long end;
        long position;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.assign(List.of(tp));
            begin = c.beginningOffsets(List.of(tp)).get(tp);
            end = c.endOffsets(List.of(tp)).get(tp);
            c.seekToBeginning(List.of(tp));
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (c.position(tp) < end && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    if (r.offset() <= prev && order == null) {
                        order = "offset " + r.offset() + " after " + prev;
                    }
                    prev = r.offset();
                    records++;
                    if (r.offset() < end) {
                        last.put(r.key(), r);
                    }
                }
            }
            position = c.position(tp);
        }

        result("java_consumer_reads_compacted_partition_to_end",
            position >= end ? null : "position " + position + " after 60s, end offset " + end);
        String gaps = order;
        if (gaps == null && records >= end - begin) {
            gaps = records + " records in offsets [" + begin + ", " + end + "): no gaps, the log is not compacted";
        }
        result("java_consumer_offsets_increase_across_gaps", gaps);
        String values = null;
        int checked = 0;
        for (Map.Entry<String, String> e : want.entrySet()) {
            ConsumerRecord<String, String> r = last.get(e.getKey());
            String problem = null;
            if (e.getValue() == null) {
                if (r != null && r.value() != null) {
                    problem = "deleted key " + e.getKey() + " ends with value " + r.value() + " at offset " + r.offset();
                }
            } else if (r == null) {
                problem = "key " + e.getKey() + " missing";
            } else if (!e.getValue().equals(r.value())) {
                problem = "key " + e.getKey() + " ends with " + r.value() + " at offset " + r.offset() + ", want " + e.getValue();
            }
            if (problem != null && values == null) {
                values = problem;
            }
            checked++;
        }
        for (String k : last.keySet()) {
            if (!want.containsKey(k) && values == null) {
                values = "unexpected key " + k;
            }
        }
        if (values == null && checked == 0) {
            values = "no expected keys in " + args[2];
        }
        result("java_consumer_sees_latest_value_per_key", values);
        System.out.println(records + " records read in offsets [" + begin + ", " + end + ")");
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
