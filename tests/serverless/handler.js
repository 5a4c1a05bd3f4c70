// Functions for tests/cli/serverless.sh: an echo, a failure and one slower than its timeout.
"use strict";
exports.echo = async (event, context) => {
  console.log("echo called");
  return { echo: event, request_id: context.awsRequestId };
};
exports.fail = async () => {
  throw new Error("boom");
};
exports.slow = async () => {
  await new Promise((resolve) => setTimeout(resolve, 3000));
  return { late: true };
};
