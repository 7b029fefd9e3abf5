// redis-parser 3 ships no types: the part the Redis test backend uses.
declare module "redis-parser" {
  interface ParserOptions {
    returnReply(reply: unknown): void;
    returnError(error: Error): void;
    returnFatalError?(error: Error): void;
    returnBuffers?: boolean;
    stringNumbers?: boolean;
  }
  export default class RedisParser {
    constructor(options: ParserOptions);
    execute(chunk: Buffer): void;
    reset(): void;
  }
}
