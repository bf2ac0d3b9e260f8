// A webhook receiver for bench/webhooks.sh: answers 204 to every POST and
// reports how many it got on GET.
const http = require("http");
let received = 0;
http
  .createServer((request, response) => {
    if (request.method === "GET") {
      response.end(String(received));
      return;
    }
    request.resume();
    request.on("end", () => {
      received += 1;
      response.statusCode = 204;
      response.end();
    });
  })
  .listen(Number(process.argv[2]), "127.0.0.1");
