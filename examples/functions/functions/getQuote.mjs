// GET /quotes/{sku}, as a Lambda handler (an ES module, Node.js).
const PRICES = { tea: 450, cake: 700 };

export const handler = async (event) => {
  const sku = event.pathParameters.sku;
  const quantity = Number(event.queryStringParameters?.quantity ?? 1);
  return {
    sku,
    quantity,
    price_cents: (PRICES[sku] ?? 100) * quantity,
    currency: event.stageVariables?.currency ?? "USD",
  };
};
