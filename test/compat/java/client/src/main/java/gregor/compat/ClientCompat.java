package gregor.compat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Checks that the Apache Kafka Java client (kafka-clients, the release in
 * pom.xml) works against a broker: AdminClient, an idempotent acks=all
 * producer, a consumer driven by assign/seek/endOffsets, and, when
 * GREGOR_COMPAT_GROUPS=1, a group consumer with subscribe and commitSync.
 *
 * <p>Usage: {@code ClientCompat [bootstrap]} (default: $BOOTSTRAP). Prints
 * PASS, FAIL or SKIP per check and ends with exactly one line
 * "N passed, N failed"; the exit status is 1 if any check failed. Checks share
 * one topic and run in order, so a failure early on (say, the producer)
 * makes the checks that read its records fail too, each saying why.
 *
 * <p>Every blocking call has a bound (admin futures, max.block.ms, poll
 * deadlines), so a broker that never answers fails a check instead of
 * hanging the suite.
 */
public final class ClientCompat {
    private static final long CALL_TIMEOUT_MS = 30_000;
    private static final int RECORDS = 1000;
    private static final int PARTITIONS = 3;
    private static final int GROWN_PARTITIONS = 5;

    private final String bootstrap;
    private final boolean groups;
    private final Pattern only;
    private final String topic;
    private final Admin admin;

    private int passed;
    private int failed;
    private final List<String> failures = new ArrayList<>();
    private final List<String> skipped = new ArrayList<>();

    /** What the producer sent, per partition in offset order; set by the producer check. */
    private Map<Integer, List<Sent>> sent;
    /** Partitions of the topic after createPartitions, with the record written to the new one. */
    private Sent grownRecord;

    record Sent(int partition, long offset, String key, String value, String idx) {
    }

    /** A failed expectation; its message is the check's FAIL reason. */
    static final class CheckFailed extends Exception {
        private static final long serialVersionUID = 1L;

        CheckFailed(String message) {
            super(message);
        }
    }

    interface Check {
        void run() throws Exception;
    }

    private ClientCompat(String bootstrap, boolean groups, Pattern only) {
        this.bootstrap = bootstrap;
        this.groups = groups;
        this.only = only;
        this.topic = "java-client-" + UUID.randomUUID().toString().substring(0, 8);
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "gregor-compat-admin");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) CALL_TIMEOUT_MS);
        this.admin = Admin.create(p);
    }

    public static void main(String[] args) {
        String bootstrap = args.length > 0 ? args[0] : System.getenv("BOOTSTRAP");
        if (bootstrap == null || bootstrap.isEmpty()) {
            System.err.println("usage: ClientCompat host:port (or set BOOTSTRAP)");
            System.out.println("0 passed, 1 failed");
            System.exit(1);
        }
        String onlyEnv = System.getenv("COMPAT_ONLY");
        Pattern only = onlyEnv == null || onlyEnv.isEmpty() ? null : Pattern.compile(onlyEnv);
        boolean groups = "1".equals(System.getenv("GREGOR_COMPAT_GROUPS"));

        ClientCompat c = new ClientCompat(bootstrap, groups, only);
        int status;
        try {
            status = c.runAll();
        } finally {
            c.admin.close(Duration.ofSeconds(5));
        }
        System.out.flush();
        // Client threads must not keep the JVM up after a failed check.
        System.exit(status);
    }

    private int runAll() {
        System.out.println("java client checks: bootstrap " + bootstrap + ", topic " + topic);
        run("admin_describe_cluster", this::checkDescribeCluster);
        run("admin_create_topic_3_partitions", this::checkCreateTopic);
        run("admin_create_existing_topic_fails", this::checkCreateExistingTopic);
        run("producer_idempotent_acks_all_contiguous_offsets", this::checkIdempotentProducer);
        run("consumer_assign_seek_end_offsets", this::checkAssignSeek);
        run("consumer_seek_to_middle", this::checkSeekMiddle);
        run("admin_create_partitions_to_5", this::checkCreatePartitions);
        run("admin_describe_configs_retention_ms", this::checkDescribeConfigs);
        if (groups) {
            run("group_subscribe_commit_sync", this::checkGroupSubscribeCommit);
        } else {
            skip("group_subscribe_commit_sync", "consumer groups not enabled (GREGOR_COMPAT_GROUPS=1)");
        }
        run("admin_delete_topic", this::checkDeleteTopic);

        if (!skipped.isEmpty()) {
            System.out.println("-- skipped: " + String.join(", ", skipped));
        }
        if (!failures.isEmpty()) {
            System.out.println("-- java client failures: " + String.join(", ", failures));
        }
        System.out.println(passed + " passed, " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }

    private void run(String name, Check check) {
        if (only != null && !only.matcher(name).find()) {
            return;
        }
        long start = System.nanoTime();
        String reason = null;
        try {
            check.run();
        } catch (CheckFailed e) {
            reason = e.getMessage();
        } catch (ExecutionException e) {
            reason = describe(e.getCause() != null ? e.getCause() : e);
        } catch (Exception e) {
            reason = describe(e);
        }
        long secs = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start);
        if (reason == null) {
            passed++;
            System.out.printf("PASS %s (%ds)%n", name, secs);
        } else {
            failed++;
            failures.add(name);
            System.out.printf("FAIL %s (%ds): %s%n", name, secs, reason);
        }
        System.out.flush();
    }

    private void skip(String name, String why) {
        if (only != null && !only.matcher(name).find()) {
            return;
        }
        skipped.add(name);
        System.out.printf("SKIP %s: %s%n", name, why);
    }

    private static String describe(Throwable t) {
        StringBuilder b = new StringBuilder(t.getClass().getName());
        if (t.getMessage() != null) {
            b.append(": ").append(t.getMessage());
        }
        for (Throwable c = t.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            b.append(" <- ").append(c.getClass().getSimpleName());
            if (c.getMessage() != null) {
                b.append(": ").append(c.getMessage());
            }
        }
        return b.toString();
    }

    private static void expect(boolean ok, String format, Object... args) throws CheckFailed {
        if (!ok) {
            throw new CheckFailed(String.format(format, args));
        }
    }

    private static <T> T get(Future<T> f) throws Exception {
        return f.get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    }

    // ------------------------------------------------------------- admin

    private void checkDescribeCluster() throws Exception {
        DescribeClusterResult r = admin.describeCluster();
        List<Node> nodes = new ArrayList<>(get(r.nodes()));
        String clusterId = get(r.clusterId());
        Node controller = get(r.controller());
        expect(nodes.size() == 1, "want 1 node, got %s", nodes);
        expect(clusterId != null && !clusterId.isEmpty(), "clusterId is %s", clusterId);
        Node n = nodes.get(0);
        String addr = n.host() + ":" + n.port();
        expect(addr.equals(bootstrap), "node address %s, want the bootstrap %s", addr, bootstrap);
        expect(controller != null && !controller.isEmpty(), "no controller reported");
        System.out.printf("  cluster %s, node %d at %s, controller %d%n", clusterId, n.id(), addr, controller.id());
    }

    private TopicDescription describeTopic() throws Exception {
        return get(admin.describeTopics(List.of(topic)).topicNameValues().get(topic));
    }

    /** Every partition 0..n-1 present, led by the single node, which is its only replica and in-sync. */
    private void expectPartitions(TopicDescription d, int want) throws Exception {
        List<TopicPartitionInfo> ps = d.partitions();
        expect(ps.size() == want, "topic %s has %d partitions, want %d", topic, ps.size(), want);
        int node = get(admin.describeCluster().nodes()).iterator().next().id();
        for (int i = 0; i < want; i++) {
            TopicPartitionInfo p = ps.get(i);
            expect(p.partition() == i, "partition at index %d is %d", i, p.partition());
            expect(p.leader() != null && p.leader().id() == node, "partition %d leader %s, want node %d", i, p.leader(), node);
            expect(p.replicas().size() == 1 && p.replicas().get(0).id() == node, "partition %d replicas %s", i, p.replicas());
            expect(p.isr().size() == 1 && p.isr().get(0).id() == node, "partition %d isr %s", i, p.isr());
        }
    }

    private void checkCreateTopic() throws Exception {
        get(admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all());
        expect(get(admin.listTopics().names()).contains(topic), "listTopics does not include %s", topic);
        TopicDescription d = describeTopic();
        expect(!d.isInternal(), "topic reported internal");
        expect(d.topicId() != null && !d.topicId().toString().equals("AAAAAAAAAAAAAAAAAAAAAA"), "topic id is zero or missing: %s", d.topicId());
        expectPartitions(d, PARTITIONS);
    }

    private void checkCreateExistingTopic() throws Exception {
        try {
            get(admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all());
        } catch (ExecutionException e) {
            expect(e.getCause() instanceof TopicExistsException, "want TopicExistsException, got %s", describe(e.getCause()));
            return;
        }
        throw new CheckFailed("creating " + topic + " a second time succeeded");
    }

    private void checkCreatePartitions() throws Exception {
        get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(GROWN_PARTITIONS))).all());
        expectPartitions(describeTopic(), GROWN_PARTITIONS);

        // The new partition takes writes and serves them back.
        int last = GROWN_PARTITIONS - 1;
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            RecordMetadata m = get(p.send(new ProducerRecord<>(topic, last, "grown", "in-new-partition")));
            expect(m.partition() == last && m.offset() == 0, "record to new partition %d landed at %d/%d", last, m.partition(), m.offset());
            grownRecord = new Sent(last, 0, "grown", "in-new-partition", null);
        }
        try (KafkaConsumer<String, String> c = consumer(null)) {
            TopicPartition tp = new TopicPartition(topic, last);
            c.assign(List.of(tp));
            c.seek(tp, 0);
            List<ConsumerRecord<String, String>> got = pollUntil(c, 1);
            expect(got.size() == 1 && "in-new-partition".equals(got.get(0).value()), "read back %s from new partition", got);
        }
    }

    private void checkDescribeConfigs() throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config cfg = get(admin.describeConfigs(List.of(res)).all()).get(res);
        expect(cfg != null, "no config for %s", res);
        ConfigEntry e = cfg.get("retention.ms");
        expect(e != null, "retention.ms missing; got %d entries", cfg.entries().size());
        try {
            long v = Long.parseLong(e.value());
            expect(v == -1 || v > 0, "retention.ms = %d", v);
        } catch (NumberFormatException nfe) {
            throw new CheckFailed("retention.ms is not a number: " + e.value());
        }
        ConfigEntry policy = cfg.get("cleanup.policy");
        expect(policy != null && "delete".equals(policy.value()), "cleanup.policy %s, want delete", policy);
        System.out.printf("  retention.ms=%s (%s), %d entries%n", e.value(), e.source(), cfg.entries().size());
    }

    private void checkDeleteTopic() throws Exception {
        get(admin.deleteTopics(List.of(topic)).all());
        long deadline = System.currentTimeMillis() + CALL_TIMEOUT_MS;
        Set<String> names;
        do {
            names = get(admin.listTopics().names());
            if (!names.contains(topic)) {
                return;
            }
            Thread.sleep(200);
        } while (System.currentTimeMillis() < deadline);
        throw new CheckFailed(topic + " still listed " + CALL_TIMEOUT_MS + " ms after deleteTopics");
    }

    // ---------------------------------------------------------- producer

    private KafkaProducer<String, String> producer(Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "gregor-compat-producer");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) CALL_TIMEOUT_MS);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) CALL_TIMEOUT_MS);
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    /**
     * 1000 keyed records with a header, from an idempotent acks=all producer
     * with several batches in flight. Per partition the offsets the broker
     * assigns must run 0, 1, 2, ... in the order the records were sent: no
     * gaps, no duplicates, no reordering.
     */
    private void checkIdempotentProducer() throws Exception {
        Map<String, Object> cfg = new HashMap<>();
        cfg.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        cfg.put(ProducerConfig.ACKS_CONFIG, "all");
        cfg.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5);
        // Small batches and a little linger give many produce requests.
        cfg.put(ProducerConfig.BATCH_SIZE_CONFIG, 4096);
        cfg.put(ProducerConfig.LINGER_MS_CONFIG, 2);
        List<Future<RecordMetadata>> futures = new ArrayList<>(RECORDS);
        List<String[]> payloads = new ArrayList<>(RECORDS);
        try (KafkaProducer<String, String> p = producer(cfg)) {
            for (int i = 0; i < RECORDS; i++) {
                String key = "key-" + (i % 37);
                String value = "value-" + i + "-" + "x".repeat(i % 100);
                String idx = Integer.toString(i);
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, key, value);
                r.headers().add("idx", idx.getBytes(StandardCharsets.UTF_8));
                futures.add(p.send(r));
                payloads.add(new String[] {key, value, idx});
            }
            p.flush();
        }
        Map<Integer, List<Sent>> byPartition = new TreeMap<>();
        for (int i = 0; i < RECORDS; i++) {
            RecordMetadata m = get(futures.get(i));
            expect(m.hasOffset(), "record %d acknowledged without an offset", i);
            String[] pl = payloads.get(i);
            byPartition.computeIfAbsent(m.partition(), k -> new ArrayList<>())
                    .add(new Sent(m.partition(), m.offset(), pl[0], pl[1], pl[2]));
        }
        expect(byPartition.keySet().equals(Set.of(0, 1, 2)), "records went to partitions %s, want all of 0..2", byPartition.keySet());
        StringBuilder counts = new StringBuilder();
        for (Map.Entry<Integer, List<Sent>> e : byPartition.entrySet()) {
            List<Sent> list = e.getValue();
            for (int j = 0; j < list.size(); j++) {
                expect(list.get(j).offset() == j, "partition %d: record %d in send order got offset %d, want %d (offsets %s...)",
                        e.getKey(), j, list.get(j).offset(), j, offsetsHead(list));
            }
            counts.append(" p").append(e.getKey()).append('=').append(list.size());
        }
        System.out.println("  offsets contiguous from 0:" + counts);
        sent = byPartition;
    }

    private static String offsetsHead(List<Sent> list) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < Math.min(list.size(), 12); i++) {
            b.append(i == 0 ? "" : " ").append(list.get(i).offset());
        }
        return b.append(']').toString();
    }

    // ---------------------------------------------------------- consumer

    private KafkaConsumer<String, String> consumer(String group) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "gregor-compat-consumer");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) CALL_TIMEOUT_MS);
        // Small fetches so that reading 1000 records takes several round trips.
        p.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, 8192);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        }
        return new KafkaConsumer<>(p);
    }

    private static List<ConsumerRecord<String, String>> pollUntil(KafkaConsumer<String, String> c, int want) {
        List<ConsumerRecord<String, String>> got = new ArrayList<>();
        long deadline = System.currentTimeMillis() + CALL_TIMEOUT_MS;
        while (got.size() < want && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                got.add(r);
            }
        }
        return got;
    }

    private Map<Integer, List<Sent>> needSent() throws CheckFailed {
        if (sent == null) {
            throw new CheckFailed("nothing to read: the producer check did not complete");
        }
        return sent;
    }

    private static String header(ConsumerRecord<String, String> r, String key) {
        Header h = r.headers().lastHeader(key);
        return h == null ? null : new String(h.value(), StandardCharsets.UTF_8);
    }

    /** Compares what was read, per partition in offset order, with what was sent. */
    private static void expectSame(Map<Integer, List<Sent>> want, List<ConsumerRecord<String, String>> got) throws CheckFailed {
        Map<Integer, List<ConsumerRecord<String, String>>> byPartition = new TreeMap<>();
        for (ConsumerRecord<String, String> r : got) {
            byPartition.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r);
        }
        for (Map.Entry<Integer, List<Sent>> e : want.entrySet()) {
            List<Sent> w = e.getValue();
            List<ConsumerRecord<String, String>> g = byPartition.getOrDefault(e.getKey(), List.of());
            expect(g.size() == w.size(), "partition %d: read %d records, want %d", e.getKey(), g.size(), w.size());
            for (int i = 0; i < w.size(); i++) {
                Sent s = w.get(i);
                ConsumerRecord<String, String> r = g.get(i);
                boolean same = r.offset() == s.offset() && s.key().equals(r.key()) && s.value().equals(r.value())
                        && s.idx().equals(header(r, "idx"));
                expect(same, "partition %d record %d: got offset=%d key=%s value=%s idx=%s, want offset=%d key=%s value=%s idx=%s",
                        e.getKey(), i, r.offset(), r.key(), r.value(), header(r, "idx"), s.offset(), s.key(), s.value(), s.idx());
            }
        }
    }

    private void checkAssignSeek() throws Exception {
        Map<Integer, List<Sent>> want = needSent();
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            tps.add(new TopicPartition(topic, p));
        }
        try (KafkaConsumer<String, String> c = consumer(null)) {
            c.assign(tps);
            Map<TopicPartition, Long> begin = c.beginningOffsets(tps, Duration.ofMillis(CALL_TIMEOUT_MS));
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofMillis(CALL_TIMEOUT_MS));
            for (TopicPartition tp : tps) {
                int n = want.get(tp.partition()).size();
                expect(begin.get(tp) == 0, "%s beginning offset %d, want 0", tp, begin.get(tp));
                expect(end.get(tp) == n, "%s end offset %d, want %d (records sent there)", tp, end.get(tp), n);
                c.seek(tp, 0);
            }
            List<ConsumerRecord<String, String>> got = pollUntil(c, RECORDS);
            expect(got.size() == RECORDS, "read %d records within %d ms, want %d", got.size(), CALL_TIMEOUT_MS, RECORDS);
            expectSame(want, got);
            for (TopicPartition tp : tps) {
                long pos = c.position(tp, Duration.ofMillis(CALL_TIMEOUT_MS));
                expect(pos == end.get(tp), "%s position %d after reading all, want end offset %d", tp, pos, end.get(tp));
            }
        }
    }

    private void checkSeekMiddle() throws Exception {
        Map<Integer, List<Sent>> want = needSent();
        int part = 0;
        for (Map.Entry<Integer, List<Sent>> e : want.entrySet()) {
            if (e.getValue().size() > want.get(part).size()) {
                part = e.getKey();
            }
        }
        List<Sent> w = want.get(part);
        int from = w.size() / 2;
        TopicPartition tp = new TopicPartition(topic, part);
        try (KafkaConsumer<String, String> c = consumer(null)) {
            c.assign(List.of(tp));
            c.seek(tp, from);
            List<ConsumerRecord<String, String>> got = pollUntil(c, w.size() - from);
            expect(!got.isEmpty(), "nothing read after seek(%s, %d)", tp, from);
            expectSame(Map.of(part, w.subList(from, w.size())), got);
        }
    }

    // ------------------------------------------------------------- group

    /**
     * A group member reads everything, commits synchronously, and the
     * committed offsets (from the consumer and from the AdminClient) equal
     * the end offsets; a second member of the same group then finds nothing
     * left to read.
     */
    private void checkGroupSubscribeCommit() throws Exception {
        Map<Integer, List<Sent>> want = needSent();
        int extra = grownRecord == null ? -1 : grownRecord.partition();
        int total = RECORDS + (extra < 0 ? 0 : 1);
        String group = "java-client-group-" + UUID.randomUUID().toString().substring(0, 8);
        Map<TopicPartition, Long> end;
        try (KafkaConsumer<String, String> c = consumer(group)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = pollUntil(c, total);
            expect(got.size() == total, "group consumer read %d records within %d ms, want %d", got.size(), CALL_TIMEOUT_MS, total);
            // The record written to the grown partition is not in `want`.
            expect(got.removeIf(r -> r.partition() == extra) == (extra >= 0), "record in partition %d missing", extra);
            expectSame(want, got);
            c.commitSync(Duration.ofMillis(CALL_TIMEOUT_MS));
            Set<TopicPartition> assigned = c.assignment();
            end = c.endOffsets(assigned, Duration.ofMillis(CALL_TIMEOUT_MS));
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(assigned, Duration.ofMillis(CALL_TIMEOUT_MS));
            for (TopicPartition tp : assigned) {
                OffsetAndMetadata om = committed.get(tp);
                expect(om != null && om.offset() == end.get(tp), "%s committed %s, want %d", tp, om, end.get(tp));
            }
        }
        Map<TopicPartition, OffsetAndMetadata> viaAdmin = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
        Map<TopicPartition, Long> adminOffsets = new LinkedHashMap<>();
        viaAdmin.forEach((tp, om) -> adminOffsets.put(tp, om.offset()));
        expect(adminOffsets.equals(end), "AdminClient listConsumerGroupOffsets %s, want %s", adminOffsets, end);

        try (KafkaConsumer<String, String> c = consumer(group)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> again = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 5_000;
            while (System.currentTimeMillis() < deadline) {
                c.poll(Duration.ofMillis(500)).forEach(again::add);
            }
            expect(!c.assignment().isEmpty(), "second member of %s got no assignment within 5s", group);
            expect(again.isEmpty(), "second member re-read %d records after the commit", again.size());
        }
    }
}
