package gregor.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Transactions with the Apache Kafka Java client: a transactional producer
 * commits a transaction that also commits a group's offsets
 * (sendOffsetsToTransaction), aborts the next one, and is then fenced by a
 * second producer with the same transactional.id, which aborts the first
 * one's open transaction and commits its own. A read_committed consumer
 * must see exactly the committed records; a read_uncommitted one must also
 * see the aborted ones (so the first check cannot pass by losing them). The
 * Admin API's listTransactions/describeTransactions must show the id.
 *
 * <p>Usage: {@code TxnCompat bootstrap transactional-id open-transactional-id};
 * {@code TxnCompat --end-open bootstrap open-transactional-id} then aborts
 * the open transaction by initializing a new producer with its id.
 * The first id ends in CompleteCommit; the second is left with an open
 * (Ongoing) transaction on a topic of its own, for java/txn.sh to find with
 * kafka-transactions.sh (the coordinator aborts it after one minute).
 * Prints PASS or FAIL per check and ends with "N passed, N failed".
 */
public final class TxnCompat {
    private static final Duration CALL = Duration.ofSeconds(30);
    private static final int PARTITIONS = 2;
    private static final int INPUT = 20;

    private final String bootstrap;
    private final String txnId;
    private final String openTxnId;
    private final Pattern only;
    private final String prefix;
    private final String in;
    private final String out;
    private final String group;
    private final Admin admin;
    private int passed;
    private int failed;
    private final List<String> failures = new ArrayList<>();

    /** Values the checks expect read_committed to show, and the ones it must not. */
    private final List<String> committedValues = new ArrayList<>();
    private final List<String> abortedValues = new ArrayList<>();

    static final class CheckFailed extends Exception {
        private static final long serialVersionUID = 1L;

        CheckFailed(String message) {
            super(message);
        }
    }

    interface Check {
        void run() throws Exception;
    }

    private TxnCompat(String bootstrap, String txnId, String openTxnId, Pattern only) {
        this.bootstrap = bootstrap;
        this.txnId = txnId;
        this.openTxnId = openTxnId;
        this.only = only;
        this.prefix = txnId + "-";
        this.in = prefix + "in";
        this.out = prefix + "out";
        this.group = prefix + "group";
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) CALL.toMillis());
        this.admin = Admin.create(p);
    }

    public static void main(String[] args) {
        if (args.length == 3 && args[0].equals("--end-open")) {
            // A new producer with the id: its initTransactions aborts the
            // transaction left open, as a restarted application would.
            TxnCompat t = new TxnCompat(args[1], args[2], args[2], null);
            try (KafkaProducer<String, String> p = t.producer(args[2])) {
                p.initTransactions();
            } finally {
                t.admin.close(Duration.ofSeconds(5));
            }
            System.exit(0);
        }
        if (args.length != 3) {
            System.err.println("usage: TxnCompat bootstrap transactional-id open-transactional-id");
            System.out.println("0 passed, 1 failed");
            System.exit(1);
        }
        String onlyEnv = System.getenv("COMPAT_ONLY");
        Pattern only = onlyEnv == null || onlyEnv.isEmpty() ? null : Pattern.compile(onlyEnv);
        TxnCompat t = new TxnCompat(args[0], args[1], args[2], only);
        int status;
        try {
            status = t.runAll();
        } finally {
            t.admin.close(Duration.ofSeconds(5));
        }
        System.out.flush();
        System.exit(status);
    }

    private int runAll() {
        System.out.println("java txn checks: bootstrap " + bootstrap + ", transactional.id " + txnId);
        run("txn_setup_topics_and_input", this::setup);
        run("txn_commit_with_send_offsets_to_transaction", this::checkCommit);
        run("txn_abort_keeps_group_offsets", this::checkAbort);
        run("txn_second_producer_fences_first_ProducerFencedException", this::checkFenced);
        run("txn_read_committed_sees_only_committed", this::checkReadCommitted);
        run("txn_read_uncommitted_sees_aborted_too", this::checkReadUncommitted);
        run("txn_admin_list_and_describe_transactions", this::checkAdmin);
        run("txn_leave_open_transaction_for_the_tools", this::leaveOpen);
        if (!failures.isEmpty()) {
            System.out.println("-- java txn failures: " + String.join(", ", failures));
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

    private static String describe(Throwable t) {
        String s = t.getClass().getName() + (t.getMessage() != null ? ": " + t.getMessage() : "");
        return t.getCause() != null && t.getCause() != t ? s + " (cause: " + describe(t.getCause()) + ")" : s;
    }

    private static void expect(boolean cond, String msg) throws CheckFailed {
        if (!cond) {
            throw new CheckFailed(msg);
        }
    }

    private KafkaProducer<String, String> producer(String id) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) CALL.toMillis());
        // delivery.timeout.ms must cover linger.ms + request.timeout.ms.
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20_000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) CALL.toMillis());
        if (id != null) {
            p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id);
            p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 60_000);
        }
        return new KafkaProducer<>(p);
    }

    private void setup() throws Exception {
        admin.createTopics(List.of(new NewTopic(in, PARTITIONS, (short) 1), new NewTopic(out, PARTITIONS, (short) 1),
                new NewTopic(prefix + "open", 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
        try (KafkaProducer<String, String> p = producer(null)) {
            for (int i = 0; i < INPUT; i++) {
                p.send(new ProducerRecord<>(in, i % PARTITIONS, "k" + i, "in-" + i)).get(30, TimeUnit.SECONDS);
            }
        }
    }

    /** Offsets the group has committed on the input, partition → offset. */
    private Map<Integer, Long> groupOffsets() throws Exception {
        Map<TopicPartition, OffsetAndMetadata> m = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
        Map<Integer, Long> r = new TreeMap<>();
        m.forEach((tp, om) -> {
            if (om != null) {
                r.put(tp.partition(), om.offset());
            }
        });
        return r;
    }

    private static Map<TopicPartition, OffsetAndMetadata> offsets(String topic, long each) {
        Map<TopicPartition, OffsetAndMetadata> m = new TreeMap<>((a, b) -> Integer.compare(a.partition(), b.partition()));
        for (int p = 0; p < PARTITIONS; p++) {
            m.put(new TopicPartition(topic, p), new OffsetAndMetadata(each));
        }
        return m;
    }

    /** One transaction: records "tag-0..n-1" to the output, offsets to the group. */
    private static void sendBatch(KafkaProducer<String, String> p, String out, String tag, int n, List<String> into)
            throws Exception {
        for (int i = 0; i < n; i++) {
            String v = tag + "-" + i;
            p.send(new ProducerRecord<>(out, i % PARTITIONS, "k" + i, v));
            into.add(v);
        }
    }

    private KafkaProducer<String, String> first;

    /**
     * The group's metadata as a consumer of the input reports it: an assign()
     * consumer of the group (generation -1, no member id), the way a
     * consume-transform-produce loop without subscribe gets it.
     */
    private ConsumerGroupMetadata groupMetadata() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.assign(offsets(in, 0).keySet());
            return c.groupMetadata();
        }
    }

    private void checkCommit() throws Exception {
        first = producer(txnId);
        first.initTransactions();
        first.beginTransaction();
        sendBatch(first, out, "commit1", 10, committedValues);
        first.sendOffsetsToTransaction(offsets(in, 5), groupMetadata());
        first.commitTransaction();
        Map<Integer, Long> got = groupOffsets();
        expect(got.equals(Map.of(0, 5L, 1, 5L)), "group offsets after the commit: " + got + ", want {0=5, 1=5}");
    }

    private void checkAbort() throws Exception {
        expect(first != null, "no producer from the commit check");
        first.beginTransaction();
        sendBatch(first, out, "abort1", 10, abortedValues);
        first.sendOffsetsToTransaction(offsets(in, 10), groupMetadata());
        first.flush();
        first.abortTransaction();
        Map<Integer, Long> got = groupOffsets();
        expect(got.equals(Map.of(0, 5L, 1, 5L)), "group offsets after the abort: " + got + ", want {0=5, 1=5} still");
    }

    private void checkFenced() throws Exception {
        expect(first != null, "no producer from the commit check");
        first.beginTransaction();
        sendBatch(first, out, "fenced1", 4, abortedValues);
        first.flush();
        try (KafkaProducer<String, String> second = producer(txnId)) {
            // Same transactional.id: bumps the epoch and aborts first's open transaction.
            second.initTransactions();
            Exception got = null;
            try {
                first.commitTransaction();
            } catch (Exception e) {
                got = e;
            }
            expect(got instanceof ProducerFencedException,
                    "first producer's commit after the second's initTransactions: want ProducerFencedException, got "
                            + (got == null ? "success" : describe(got)));
            second.beginTransaction();
            sendBatch(second, out, "commit2", 6, committedValues);
            second.sendOffsetsToTransaction(offsets(in, 10), groupMetadata());
            second.commitTransaction();
        } finally {
            first.close(Duration.ZERO);
            first = null;
        }
        Map<Integer, Long> got = groupOffsets();
        expect(got.equals(Map.of(0, 10L, 1, 10L)), "group offsets after the second producer's commit: " + got);
    }

    /** Every value in the output up to the end offsets for this isolation level. */
    private List<String> readAll(String isolation) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < PARTITIONS; i++) {
                tps.add(new TopicPartition(out, i));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            // For read_committed, endOffsets is the last stable offset.
            Map<TopicPartition, Long> end = c.endOffsets(tps, CALL);
            List<String> got = new ArrayList<>();
            long deadline = System.nanoTime() + CALL.toNanos();
            while (tps.stream().anyMatch(tp -> c.position(tp, CALL) < end.get(tp))) {
                expect(System.nanoTime() < deadline, isolation + " read: positions "
                        + tps.stream().map(tp -> c.position(tp, CALL)).collect(Collectors.toList()) + ", ends " + end);
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    got.add(r.value());
                }
            }
            return got;
        }
    }

    private void checkReadCommitted() throws Exception {
        expect(!committedValues.isEmpty(), "nothing was committed by the checks before");
        List<String> got = readAll("read_committed");
        List<String> want = new ArrayList<>(committedValues);
        got.sort(null);
        want.sort(null);
        expect(got.equals(want), "read_committed values " + got + ", want " + want);
    }

    private void checkReadUncommitted() throws Exception {
        expect(!abortedValues.isEmpty(), "nothing was aborted by the checks before");
        Set<String> got = Set.copyOf(readAll("read_uncommitted"));
        List<String> missing = new ArrayList<>();
        for (String v : abortedValues) {
            if (!got.contains(v)) {
                missing.add(v);
            }
        }
        expect(missing.isEmpty(), "read_uncommitted lacks aborted records " + missing);
        expect(got.containsAll(committedValues), "read_uncommitted lacks committed records");
    }

    private void checkAdmin() throws Exception {
        Collection<TransactionListing> listed = admin.listTransactions().all().get(30, TimeUnit.SECONDS);
        TransactionListing mine = listed.stream().filter(l -> l.transactionalId().equals(txnId)).findFirst().orElse(null);
        expect(mine != null, "listTransactions lacks " + txnId);
        expect(mine.state() == TransactionState.COMPLETE_COMMIT, "listTransactions state " + mine.state());
        TransactionDescription d = admin.describeTransactions(List.of(txnId)).description(txnId)
                .get(30, TimeUnit.SECONDS);
        expect(d.state() == TransactionState.COMPLETE_COMMIT, "describeTransactions state " + d.state());
        expect(d.producerId() == mine.producerId(), "producer id " + d.producerId() + " vs listed " + mine.producerId());
        expect(d.producerEpoch() >= 1, "producer epoch " + d.producerEpoch() + " after a fencing init");
        expect(d.topicPartitions().isEmpty(), "a completed transaction has partitions " + d.topicPartitions());
    }

    /** An open transaction with one record on prefix-open, left for txn.sh. */
    private void leaveOpen() throws Exception {
        KafkaProducer<String, String> p = producer(openTxnId);
        p.initTransactions();
        p.beginTransaction();
        p.send(new ProducerRecord<>(prefix + "open", 0, "k", "open")).get(30, TimeUnit.SECONDS);
        // No close: closing would not end the transaction either, and the
        // JVM exits right after; the coordinator times it out.
        TransactionDescription d = admin.describeTransactions(List.of(openTxnId)).description(openTxnId)
                .get(30, TimeUnit.SECONDS);
        expect(d.state() == TransactionState.ONGOING, "describeTransactions state " + d.state() + ", want Ongoing");
        expect(d.topicPartitions().equals(Set.of(new TopicPartition(prefix + "open", 0))),
                "open transaction's partitions " + d.topicPartitions());
    }
}
