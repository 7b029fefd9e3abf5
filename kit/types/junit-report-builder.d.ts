// The package ships no types; this covers the part of its API the kit uses.
declare module "junit-report-builder" {
  interface TestCase {
    className(name: string): TestCase;
    name(name: string): TestCase;
    time(seconds: number): TestCase;
    failure(message?: string, type?: string): TestCase;
    error(message?: string, type?: string, content?: string): TestCase;
    /** The failure element's text (its body). */
    stacktrace(text?: string): TestCase;
    standardOutput(log?: string): TestCase;
  }
  interface TestSuite {
    name(name: string): TestSuite;
    property(name: string, value: string | number): TestSuite;
    testCase(): TestCase;
  }
  interface Builder {
    testSuite(): TestSuite;
    writeTo(file: string): void;
    build(): string;
  }
  const builder: Builder & { newBuilder(): Builder };
  export default builder;
}
