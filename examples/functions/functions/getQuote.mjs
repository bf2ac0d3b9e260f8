// GET /quotes/{sku}, as a Lambda handler (an ES module, Node.js).
import { priceOf } from "./_prices.mjs";

export const handler = async (event) => {
  const sku = event.pathParameters.sku;
  const quantity = Number(event.queryStringParameters?.quantity ?? 1);
  return {
    sku,
    quantity,
    price_cents: priceOf(sku) * quantity,
    currency: event.stageVariables?.currency ?? "USD",
  };
};
