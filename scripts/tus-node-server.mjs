// @tus/server with @tus/file-store, the reference Node.js tus server, for
// scripts/bench.sh. Usage: node tus-node-server.mjs PORT DIR
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [port, dir] = process.argv.slice(2);
const server = new Server({ path: '/files', datastore: new FileStore({ directory: dir }) });
server.listen({ host: '127.0.0.1', port: Number(port) }, () => console.log(`listening ${port}`));
