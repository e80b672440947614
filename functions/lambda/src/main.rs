//! `flowchat-lambda`: FlowChat's HTTP API as one AWS Lambda function (the
//! `bootstrap` of an OS-only runtime, `provided.al2023`). Start-up reads the
//! configuration once; a configuration error ends the process with exit
//! code 2 (any other start-up failure with 1) and a message naming the
//! variable, which Lambda reports as an
//! init failure in the function's log.

use std::process::ExitCode;

use lambda_http::{Error, Request, service_fn};

/// Variables Lambda sets for every function; `lambda_runtime` panics
/// without them, so their absence (the binary started by hand) is reported
/// plainly instead, before anything else starts.
const LAMBDA_VARIABLES: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

#[tokio::main]
async fn main() -> ExitCode {
    if let Some(missing) = LAMBDA_VARIABLES
        .iter()
        .find(|name| std::env::var_os(name).is_none())
    {
        eprintln!(
            "flowchat-lambda cannot start: {missing} is not set. This binary runs inside AWS Lambda; \
             locally run it under flowchat-lambda-emulator or `cargo lambda watch` (docs/deploy-lambda.md)"
        );
        return ExitCode::from(2);
    }
    let ctx = match flowchat_lambda::context_from_env().await {
        Ok(ctx) => ctx,
        Err(error) => {
            eprintln!("flowchat-lambda cannot start: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    let handler = service_fn(move |req: Request| {
        let ctx = ctx.clone();
        async move { Ok::<_, Error>(flowchat_lambda::answer(&ctx, req).await) }
    });
    match lambda_http::run_with_streaming_response(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flowchat-lambda: the Lambda runtime stopped: {error}");
            ExitCode::FAILURE
        }
    }
}
