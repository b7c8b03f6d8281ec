/** The Lambda service emulator now lives in src/aws-local/lambda-service.ts; these are its former test names. */
export {
  LambdaService as FakeLambdaService,
  streamFromRuntime,
  type ChangeOutcome,
  type InjectedFailure,
  type LambdaFunction as FakeFunction,
  type LambdaServiceOptions as FakeLambdaOptions,
  type RecordedCall,
  type RequestHandler,
  type StreamHandler,
  type StreamPart,
} from "../../src/aws-local/lambda-service.js";
