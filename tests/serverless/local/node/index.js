// Node.js handlers for the local backend's tests: an async one, one with a callback, and one
// that throws.
"use strict";
exports.handler = async (event, context) => ({
  event,
  pid: process.pid,
  request_id: context.awsRequestId,
  left_ms: context.getRemainingTimeInMillis(),
  stage: process.env.STAGE || null,
});
exports.callback = (event, context, callback) => {
  setImmediate(() => callback(null, { called_back: event }));
};
exports.fail = async () => {
  throw new TypeError("not a number");
};
