// Powertools for AWS Lambda (TypeScript): BatchProcessor with the parser
// integration and a Zod schema, built once (bundled by esbuild).
//
// The same work as the Rust rows, on the same files: the event text parsed as
// the Lambda runtime does (JSON.parse), every record parsed with the record
// schema (DynamoDB images unmarshalled and validated as an Item; SQS bodies
// parsed as JSON and validated as a Job), the handler run (it throws for the
// 1 % of records marked `fail-`), the partial batch response built and
// encoded (JSON.stringify).
//
// Usage:
//   node dist/run.mjs throughput DIR SECONDS   one JSON line per (source, size)
//   node dist/run.mjs peak FILE stream|sqs     peak RSS of one invocation

import { readFileSync } from 'node:fs';
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { parser } from '@aws-lambda-powertools/batch/parser';
import { JSONStringified } from '@aws-lambda-powertools/parser/helpers';
import { DynamoDBMarshalled } from '@aws-lambda-powertools/parser/helpers/dynamodb';
import { DynamoDBStreamChangeRecordBase, DynamoDBStreamRecord } from '@aws-lambda-powertools/parser/schemas/dynamodb';
import { SqsRecordSchema } from '@aws-lambda-powertools/parser/schemas/sqs';
import { z } from 'zod';

const IMPL = 'TypeScript Powertools batch + parser (Zod)';
const SIZES = [100, 1000, 5000];

const decimal = z.string().regex(/^-?\d+(\.\d+)?$/);

const Item = z.object({
  pk: z.string(),
  sk: z.string(),
  gsi1pk: z.string(),
  gsi1sk: z.string(),
  name: z.string(),
  status: z.enum(['PENDING', 'PROCESSED', 'FAILED']),
  price: decimal,
  quantity: z.number().int(),
  tags: z.set(z.string()).optional(),
  attributes: z.record(z.string(), z.string()).optional(),
  created_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
  version: z.number().int().nonnegative(),
  total: decimal.optional(),
  processed_at: z.iso.datetime().optional(),
  failure_reason: z.string().optional(),
  expires_at: z.number().int().optional(),
});

const Job = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('process_item'), item_id: z.string(), version: z.number().int().nonnegative() }),
  z.strictObject({
    type: z.literal('record_removal'),
    item_id: z.string(),
    version: z.number().int().nonnegative(),
    reason: z.enum(['deleted', 'ttl_expired']),
    sequence_number: z.string(),
    removed_at: z.iso.datetime().optional(),
  }),
]);

// The record schemas, built once.
const StreamRecordSchema = DynamoDBStreamRecord.extend({
  dynamodb: DynamoDBStreamChangeRecordBase.extend({
    NewImage: DynamoDBMarshalled(Item).optional(),
    OldImage: DynamoDBMarshalled(Item).optional(),
  }),
});
const QueueRecordSchema = SqsRecordSchema.extend({ body: JSONStringified(Job) });

type StreamRecord = z.infer<typeof StreamRecordSchema>;
type QueueRecord = z.infer<typeof QueueRecordSchema>;

const streamProcessor = new BatchProcessor(EventType.DynamoDBStreams, { parser, schema: StreamRecordSchema });
const sqsProcessor = new BatchProcessor(EventType.SQS, { parser, schema: QueueRecordSchema });

const streamHandler = async (record: StreamRecord): Promise<void> => {
  const item = record.dynamodb.NewImage ?? record.dynamodb.OldImage;
  if (item === undefined || item.name.startsWith('fail-')) {
    throw new Error(`injected failure for ${item?.pk}`);
  }
};

const sqsHandler = async (record: QueueRecord): Promise<void> => {
  if (record.body.item_id.startsWith('fail-')) {
    throw new Error(`injected failure for ${record.body.item_id}`);
  }
};

const invoke = async (bytes: Buffer, source: string): Promise<string> => {
  const event = JSON.parse(bytes.toString('utf8'));
  const response =
    source === 'stream'
      ? // biome-ignore lint: the handlers take the parsed record types
        await processPartialResponse(event, streamHandler as any, streamProcessor)
      : // biome-ignore lint: the handlers take the parsed record types
        await processPartialResponse(event, sqsHandler as any, sqsProcessor);
  return JSON.stringify(response);
};

const medianTime = async (fn: () => unknown, seconds: number): Promise<number> => {
  await fn();
  const times: number[] = [];
  const start = performance.now();
  while (performance.now() - start < seconds * 1000 || times.length < 5) {
    const t = performance.now();
    await fn();
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
};

const line = (impl: string, source: string, records: number, bytes: number, seconds: number): void => {
  console.log(JSON.stringify({ impl, source, records, bytes, median_s: seconds }));
};

const throughput = async (dir: string, seconds: number): Promise<void> => {
  for (const source of ['stream', 'sqs']) {
    for (const n of SIZES) {
      const bytes = readFileSync(`${dir}/${source}-${n}.json`);
      line('Node JSON.parse', source, n, bytes.length, await medianTime(() => JSON.parse(bytes.toString('utf8')), seconds));
      line(IMPL, source, n, bytes.length, await medianTime(() => invoke(bytes, source), seconds));
    }
  }
};

const peak = async (file: string, source: string): Promise<void> => {
  const before = process.resourceUsage().maxRSS * 1024;
  const bytes = readFileSync(file);
  const response = await invoke(bytes, source);
  const after = process.resourceUsage().maxRSS * 1024;
  console.log(
    JSON.stringify({
      impl: IMPL,
      source,
      payload_bytes: bytes.length,
      peak_rss_bytes: after,
      batch_peak_bytes: after - before,
      failures: JSON.parse(response).batchItemFailures.length,
    }),
  );
};

const [command, a, b] = process.argv.slice(2);
if (command === 'throughput') {
  await throughput(a, Number(b));
} else {
  await peak(a, b);
}
