"""An independent Kafka consumer (Python's confluent-kafka) for the tests.

Reads every partition of a topic from the beginning until it has seen `expected` distinct
event ids (the `event_id` header) or `timeout` seconds pass, then prints one
JSON object per message read: partition, offset, key, headers, value.

usage: kafka_consume.py BOOTSTRAP TOPIC EXPECTED TIMEOUT
"""
import json
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition


def main():
    bootstrap, topic, expected, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": "security-test-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
    }
    probe = Consumer(config)
    metadata = probe.list_topics(topic, timeout=30)
    probe.close()
    partitions = sorted(metadata.topics[topic].partitions)
    if not partitions:
        raise SystemExit("topic %s has no partitions" % topic)
    # One consumer per partition, each assigned its partition from the
    # beginning: no consumer-group rebalancing to wait for, and the
    # partitions are fetched in parallel (librdkafka prefetches in the
    # background).
    consumers = []
    for partition in partitions:
        consumer = Consumer(config)
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        consumers.append(consumer)
    seen = set()
    out = []
    deadline = time.time() + timeout
    idle_since = None
    try:
        while time.time() < deadline:
            got = 0
            for consumer in consumers:
                for message in consumer.consume(num_messages=1000, timeout=0.05):
                    if message.error():
                        raise KafkaException(message.error())
                    got += 1
                    headers = {k: (v.decode() if v is not None else None) for k, v in (message.headers() or [])}
                    seen.add(headers.get("event_id"))
                    out.append({
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "key": message.key().decode() if message.key() is not None else None,
                        "headers": headers,
                        "value": message.value().decode(),
                    })
            if got:
                idle_since = None
            elif len(seen) >= expected:
                # Everything expected arrived: a short quiet spell catches
                # late duplicates, then stop.
                idle_since = idle_since or time.time()
                if time.time() - idle_since > 2.0:
                    break
    finally:
        for consumer in consumers:
            consumer.close()
    for record in out:
        print(json.dumps(record))


if __name__ == "__main__":
    main()
