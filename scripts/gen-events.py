#!/usr/bin/env python3
"""Writes the sample Lambda events under events/.

The files are committed; run this again after changing the model, then
review the diff. Every file is a complete Lambda event that
`cargo lambda invoke --data-file` accepts and the unit tests read.
"""
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "events")
REGION = "us-east-1"
ACCOUNT = "123456789012"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/pipeline-items/stream/2026-11-20T10:00:00.000"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:pipeline-processing"
FIFO_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:pipeline-processing.fifo"
TS = 1795600000  # 2026-11-24T...


def item(item_id, name="Blue Widget", status="PENDING", price="19.99", quantity=3, version=1,
         tags=("blue", "sale"), extra=None):
    img = {
        "pk": {"S": f"ITEM#{item_id}"},
        "sk": {"S": "ITEM"},
        "gsi1pk": {"S": f"STATUS#{status}"},
        "gsi1sk": {"S": f"ITEM#{item_id}"},
        "name": {"S": name},
        "status": {"S": status},
        "price": {"S": price},
        "quantity": {"N": str(quantity)},
        "attributes": {"M": {"color": {"S": "blue"}}},
        "created_at": {"S": "2026-11-20T10:00:00Z"},
        "updated_at": {"S": "2026-11-20T10:00:00Z"},
        "version": {"N": str(version)},
    }
    if tags:
        img["tags"] = {"SS": list(tags)}
    if extra:
        img.update(extra)
    return img


def keys(item_id):
    return {"pk": {"S": f"ITEM#{item_id}"}, "sk": {"S": "ITEM"}}


def stream_record(seq, name, item_id, new=None, old=None, view="NEW_AND_OLD_IMAGES", ttl=False, **overrides):
    data = {
        "ApproximateCreationDateTime": TS + seq % 1000,
        "Keys": keys(item_id),
        "SequenceNumber": str(seq),
        "SizeBytes": 256,
        "StreamViewType": view,
    }
    if new is not None:
        data["NewImage"] = new
    if old is not None:
        data["OldImage"] = old
    rec = {
        "eventID": f"evt-{seq}",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "eventSourceARN": STREAM_ARN,
        "dynamodb": data,
    }
    if ttl:
        rec["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    for k, v in overrides.items():
        if k.startswith("dynamodb_"):
            key = k[len("dynamodb_"):]
            if v is None:
                data.pop(key, None)
            else:
                data[key] = v
        else:
            rec[k] = v
    return rec


def sqs_record(n, body, arn=QUEUE_ARN, group=None, receive_count=1, attributes=None):
    attrs = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(TS * 1000 + n),
        "SenderId": "AIDAEXAMPLE",
        "ApproximateFirstReceiveTimestamp": str(TS * 1000 + n + 5),
    }
    if group:
        attrs["MessageGroupId"] = group
        attrs["SequenceNumber"] = str(18800000000000000000 + n)
        attrs["MessageDeduplicationId"] = f"dedup-{n}"
    return {
        "messageId": f"00000000-0000-4000-8000-{n:012d}",
        "receiptHandle": f"receipt-{n}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": attrs,
        "messageAttributes": attributes or {},
        "md5OfBody": "ignored-by-the-processors",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": REGION,
    }


def write(path, records):
    full = os.path.join(ROOT, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        json.dump({"Records": records}, f, indent=2)
        f.write("\n")


def main():
    processed = item("1002", name="Green Lamp", status="PROCESSED", version=2,
                     extra={"total": {"S": "59.97"}, "processed_at": {"S": "2026-11-20T10:00:05Z"}})
    write("stream/mixed-changes.json", [
        # A new item: the stream processor enqueues a process_item job.
        stream_record(100, "INSERT", "1001", new=item("1001")),
        # A writer changed the content while PENDING: a new job for version 2.
        stream_record(101, "MODIFY", "1002", old=item("1002", name="Green Lamp"),
                      new=item("1002", name="Green Lamp", price="24.50", version=2)),
        # The queue processor's own status write: ignored (no loop).
        stream_record(102, "MODIFY", "1002", old=item("1002", name="Green Lamp", price="24.50", version=2),
                      new=dict(processed, price={"S": "24.50"}, version={"N": "3"})),
        # A writer deleted an item: a record_removal job (reason deleted).
        stream_record(103, "REMOVE", "1003", old=item("1003", status="PROCESSED", version=2)),
        # DynamoDB's TTL expired an item: a record_removal job (reason ttl_expired).
        stream_record(104, "REMOVE", "1004", old=item("1004", version=1, extra={"expires_at": {"N": str(TS)}}),
                      ttl=True),
    ])
    write("stream/undecodable-item.json", [
        stream_record(200, "INSERT", "2001", new=item("2001")),
        # price written as a number by a foreign writer, and quantity as a string:
        # fails only this record, naming dynamodb.NewImage.price.
        stream_record(201, "INSERT", "2002", new=item("2002", extra={"price": {"N": "19.99"}})),
        # an unknown status value: fails only this record.
        stream_record(202, "INSERT", "2003", new=item("2003", extra={"status": {"S": "ARCHIVED"}})),
        stream_record(203, "INSERT", "2004", new=item("2004")),
    ])
    write("stream/odd-envelopes.json", [
        # Lenient envelope: float timestamp, eventVersion 1.0, no SizeBytes: decodes.
        stream_record(300, "INSERT", "3001", new=item("3001"), eventVersion="1.0",
                      dynamodb_ApproximateCreationDateTime=1795600000.123, dynamodb_SizeBytes=None),
        # A date-string timestamp: decodes.
        stream_record(301, "INSERT", "3002", new=item("3002"),
                      dynamodb_ApproximateCreationDateTime="2026-11-24T08:26:40Z"),
        # An unknown eventName: fails only itself.
        stream_record(302, "UPSERT", "3003", new=item("3003")),
        # A record missing its NewImage although the view type promises one.
        stream_record(303, "INSERT", "3004", dynamodb_NewImage=None),
        # A record missing a required attribute of the item (name).
        stream_record(304, "INSERT", "3005", new={k: v for k, v in item("3005").items() if k != "name"}),
    ])
    write("stream/view-keys-only.json", [
        stream_record(400, "INSERT", "4001", view="KEYS_ONLY"),
        stream_record(401, "MODIFY", "4001", view="KEYS_ONLY"),
        stream_record(402, "REMOVE", "4001", view="KEYS_ONLY"),
    ])
    write("stream/view-new-image.json", [
        stream_record(500, "INSERT", "5001", new=item("5001"), view="NEW_IMAGE"),
        # MODIFY under NEW_IMAGE has no OldImage: a typed Change needs both.
        stream_record(501, "MODIFY", "5001", new=item("5001", version=2), view="NEW_IMAGE"),
    ])
    write("stream/view-old-image.json", [
        stream_record(600, "REMOVE", "6001", old=item("6001"), view="OLD_IMAGE"),
        # INSERT under OLD_IMAGE has no NewImage.
        stream_record(601, "INSERT", "6002", view="OLD_IMAGE"),
    ])

    write("sqs/jobs.json", [
        sqs_record(1, {"type": "process_item", "item_id": "1001", "version": 1}),
        sqs_record(2, {"type": "process_item", "item_id": "1002", "version": 2}),
        sqs_record(3, {"type": "record_removal", "item_id": "1003", "version": 2, "reason": "deleted",
                       "sequence_number": "103", "removed_at": "2026-11-24T08:26:43Z"}),
        sqs_record(4, {"type": "record_removal", "item_id": "1004", "version": 1, "reason": "ttl_expired",
                       "sequence_number": "104"}, receive_count=2),
    ])
    write("sqs/poison.json", [
        sqs_record(11, {"type": "process_item", "item_id": "1001", "version": 1}),
        # Not JSON at all.
        sqs_record(12, "this is not json {"),
        # An unknown job type.
        sqs_record(13, {"type": "explode_item", "item_id": "1001"}),
        # A job missing its version.
        sqs_record(14, {"type": "process_item", "item_id": "1001"}),
        sqs_record(15, {"type": "process_item", "item_id": "1002", "version": 2}),
    ])
    write("sqs/fifo-groups.json", [
        sqs_record(21, {"type": "process_item", "item_id": "A1", "version": 1}, arn=FIFO_ARN, group="tenant-a"),
        sqs_record(22, {"type": "process_item", "item_id": "B1", "version": 1}, arn=FIFO_ARN, group="tenant-b"),
        sqs_record(23, {"type": "process_item", "item_id": "A2", "version": 1}, arn=FIFO_ARN, group="tenant-a"),
        sqs_record(24, {"type": "process_item", "item_id": "C1", "version": 1}, arn=FIFO_ARN, group="tenant-c"),
        sqs_record(25, {"type": "process_item", "item_id": "B2", "version": 1}, arn=FIFO_ARN, group="tenant-b"),
        sqs_record(26, {"type": "process_item", "item_id": "A3", "version": 1}, arn=FIFO_ARN, group="tenant-a"),
    ])


if __name__ == "__main__":
    main()
