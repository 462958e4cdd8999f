"""Powertools for AWS Lambda (Python): BatchProcessor with pydantic models.

The same work as the Rust rows, on the same files: the event text parsed as
the Lambda runtime does (json.loads), every record validated into its
pydantic model (DynamoDB images deserialized by Powertools and validated as
`Item`; SQS bodies parsed as JSON and validated as a `Job`), the handler run
(it raises for the 1 % of records marked `fail-`), the partial batch response
built and encoded (json.dumps).

Usage:
  run.py throughput DIR SECONDS   one JSON line per (source, size)
  run.py peak FILE stream|sqs     peak RSS of one invocation, fresh process
"""

import json
import resource
import statistics
import sys
import time
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, Optional, Union

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamChangedRecordModel,
    DynamoDBStreamRecordModel,
    SqsRecordModel,
)
from pydantic import BaseModel, ConfigDict, Field, Json

IMPL = "Python Powertools BatchProcessor + pydantic"
SIZES = (100, 1000, 5000)


class Item(BaseModel):
    pk: str
    sk: str
    gsi1pk: str
    gsi1sk: str
    name: str
    status: Literal["PENDING", "PROCESSED", "FAILED"]
    price: Decimal
    quantity: int
    tags: set[str] = set()
    attributes: dict[str, str] = {}
    created_at: datetime
    updated_at: datetime
    version: int
    total: Optional[Decimal] = None
    processed_at: Optional[datetime] = None
    failure_reason: Optional[str] = None
    expires_at: Optional[int] = None


class ItemChange(DynamoDBStreamChangedRecordModel):
    NewImage: Optional[Item] = None
    OldImage: Optional[Item] = None


class ItemRecord(DynamoDBStreamRecordModel):
    dynamodb: ItemChange


class ProcessItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["process_item"]
    item_id: str
    version: int = Field(ge=0)


class RecordRemoval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["record_removal"]
    item_id: str
    version: int = Field(ge=0)
    reason: Literal["deleted", "ttl_expired"]
    sequence_number: str
    removed_at: Optional[datetime] = None


Job = Annotated[Union[ProcessItem, RecordRemoval], Field(discriminator="type")]


class JobRecord(SqsRecordModel):
    body: Json[Job]


stream_processor = BatchProcessor(event_type=EventType.DynamoDBStreams, model=ItemRecord)
sqs_processor = BatchProcessor(event_type=EventType.SQS, model=JobRecord)


def stream_handler(record: ItemRecord):
    item = record.dynamodb.NewImage or record.dynamodb.OldImage
    if item.name.startswith("fail-"):
        raise RuntimeError(f"injected failure for {item.pk}")


def sqs_handler(record: JobRecord):
    if record.body.item_id.startswith("fail-"):
        raise RuntimeError(f"injected failure for {record.body.item_id}")


class Context:
    function_name = "bench"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self):
        return 60_000


CONTEXT = Context()


def invoke(text, source):
    event = json.loads(text)
    if source == "stream":
        response = process_partial_response(
            event=event, record_handler=stream_handler, processor=stream_processor, context=CONTEXT
        )
    else:
        response = process_partial_response(event=event, record_handler=sqs_handler, processor=sqs_processor, context=CONTEXT)
    return json.dumps(response)


def median_time(fn, seconds):
    fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def line(impl, source, n, size, seconds):
    print(json.dumps({"impl": impl, "source": source, "records": n, "bytes": size, "median_s": seconds}), flush=True)


def throughput(directory, seconds):
    for source in ("stream", "sqs"):
        for n in SIZES:
            with open(f"{directory}/{source}-{n}.json", "rb") as f:
                text = f.read()
            line("Python json.loads", source, n, len(text), median_time(lambda: json.loads(text), seconds))
            line(IMPL, source, n, len(text), median_time(lambda: invoke(text, source), seconds))


def peak(path, source):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(path, "rb") as f:
        text = f.read()
    size = len(text)
    invoke(text, source)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"impl": IMPL, "source": source, "payload_bytes": size, "peak_rss_bytes": after,
                      "batch_peak_bytes": after - before}))


if __name__ == "__main__":
    # Powertools logs every failed record at debug level only; keep it quiet.
    if sys.argv[1] == "throughput":
        throughput(sys.argv[2], float(sys.argv[3]))
    else:
        peak(sys.argv[2], sys.argv[3])
