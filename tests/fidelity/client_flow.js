// Flows of a DM-thread bot driven by the official Mattermost JavaScript client
// (@mattermost/client: Client4 for REST, WebSocketClient for events) against a server on
// 127.0.0.1.
//
//   node client_flow.js [--resume] URL BOT_TOKEN HUMAN_ID HUMAN_TOKEN
//
// (or the environment variables MM_URL, MM_BOT_TOKEN, MM_HUMAN_ID, MM_HUMAN_TOKEN).  The client
// is loaded from MM_CLIENT_DIR, by default <repo>/.cache/mm-client (scripts/install-mm-clients.sh).
//
// Without --resume: the whole REST + WebSocket flow of a bot.  With --resume: the socket's
// recovery, driven from outside: after the `resume_ready` line the server is expected to drop
// the socket and post "while away 1" and "while away 2" as the human; after `restart_ready` it
// is expected to restart (forgetting connections) and post "while restarting" meanwhile.
//
// Prints one JSON line per check on stdout: {"check": name, "ok": bool, "detail": ...}, then a
// {"check": "created", ...} line with the ids of everything it made, and exits 1 if any check
// failed (2 on a crash or on the overall time limit).  The clients' own logging goes to stderr.
'use strict';

const path = require('node:path');
const { createRequire } = require('node:module');

const OVERALL_TIMEOUT_MS = Number(process.env.MM_FLOW_TIMEOUT_MS || 20000);
const EVENT_TIMEOUT_MS = 5000;

const args = process.argv.slice(2);
const resumeMode = args[0] === '--resume';
if (resumeMode) {
    args.shift();
}
const [url, botToken, humanId, humanToken] = [
    args[0] || process.env.MM_URL,
    args[1] || process.env.MM_BOT_TOKEN,
    args[2] || process.env.MM_HUMAN_ID,
    args[3] || process.env.MM_HUMAN_TOKEN,
];
if (!url || !botToken || !humanId || !humanToken) {
    process.stderr.write('usage: node client_flow.js [--resume] URL BOT_TOKEN HUMAN_ID HUMAN_TOKEN\n');
    process.exit(2);
}

// WebSocketClient and Client4 log with console.log; stdout is reserved for the JSON lines.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);
console.warn = (...args) => console.error(...args);

const clientDir = process.env.MM_CLIENT_DIR || path.resolve(__dirname, '..', '..', '.cache', 'mm-client');
const requireClient = createRequire(path.join(clientDir, 'package.json'));

// Node 20 has neither a global WebSocket nor CloseEvent; WebSocketClient reads WebSocket.OPEN even
// when it is given newWebSocketFn, and builds a CloseEvent on ping timeout or a sequence gap.
const WS = requireClient('ws');
globalThis.WebSocket = WS;
globalThis.CloseEvent = class CloseEvent extends Event {
    constructor(type, init = {}) {
        super(type);
        this.code = init.code;
        this.reason = init.reason || '';
        this.wasClean = Boolean(init.wasClean);
    }
};
const { Client4, ClientError, WebSocketClient } = requireClient('@mattermost/client');

let failures = 0;
function report(check, ok, detail) {
    if (!ok) {
        failures += 1;
    }
    process.stdout.write(JSON.stringify({ check, ok: Boolean(ok), detail: detail === undefined ? null : detail }) + '\n');
}

function describeError(err) {
    if (err && typeof err === 'object') {
        return {
            name: err.name,
            message: err.message,
            server_error_id: err.server_error_id,
            status_code: err.status_code,
            url: err.url,
            cause: err.cause ? String(err.cause) : undefined,
        };
    }
    return String(err);
}

// Runs one REST step: `fn` returns [ok, detail]; an exception is a failed check.
async function step(check, fn) {
    try {
        const [ok, detail] = await fn();
        report(check, ok, detail);
        return ok;
    } catch (err) {
        report(check, false, { error: describeError(err) });
        return false;
    }
}

function newClient(token) {
    const client = new Client4();
    client.setUrl(url);
    client.setToken(token);
    client.setIncludeCookies(false);
    return client;
}

const sortedByCreateAt = (postList) =>
    postList.order
        .map((id) => postList.posts[id])
        .filter(Boolean)
        .sort((a, b) => a.create_at - b.create_at || (a.id < b.id ? -1 : 1))
        .map((p) => p.id);

// --- WebSocket event collection ---------------------------------------------------------------
const events = [];
const waiters = [];
const closes = [];
const missed = [];

function onEvent(msg) {
    events.push(msg);
    for (const waiter of [...waiters]) {
        const found = waiter.pick(msg);
        if (found !== undefined) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(found);
        }
    }
}

// Resolves with pick(event) for the first event (past or future) where it is not undefined, or
// with undefined after `ms`.
function waitForEvent(pick, ms = EVENT_TIMEOUT_MS) {
    for (const msg of events) {
        const found = pick(msg);
        if (found !== undefined) {
            return Promise.resolve(found);
        }
    }
    return new Promise((resolve) => {
        const waiter = { pick, resolve };
        waiters.push(waiter);
        setTimeout(() => {
            const i = waiters.indexOf(waiter);
            if (i >= 0) {
                waiters.splice(i, 1);
                resolve(undefined);
            }
        }, ms);
    });
}

function parseJsonString(value) {
    if (typeof value !== 'string') {
        return undefined;
    }
    try {
        return JSON.parse(value);
    } catch {
        return undefined;
    }
}

// Picks an event by name whose double-encoded `field` (post/reaction) satisfies `match`.
const eventWith = (name, field, match) => (msg) => {
    if (msg.event !== name || !msg.data) {
        return undefined;
    }
    const inner = parseJsonString(msg.data[field]);
    return inner !== undefined && match(inner) ? { msg, inner } : undefined;
};

const reconnects = [];

// The bot's WebSocketClient, header-authenticated so that it can resume; short retry times.
function openSocket(bot) {
    const ws = new WebSocketClient({
        newWebSocketFn: (wsUrl) => new WS(wsUrl, { headers: { Authorization: 'Bearer ' + botToken } }),
        minWebSocketRetryTime: 200,
        maxWebSocketFails: 20,
        reconnectJitterRange: 100,
    });
    ws.addMessageListener(onEvent);
    ws.addMissedMessageListener(() => missed.push(Date.now()));
    ws.addCloseListener((failCount) => closes.push(failCount));
    ws.addReconnectListener(() => reconnects.push(Date.now()));
    ws.addErrorListener(() => {});
    ws.initialize(bot.getWebSocketUrl().replace(/^http/, 'ws'), botToken);
    return ws;
}

async function main() {
    const bot = newClient(botToken);
    const human = newClient(humanToken);

    // -- WebSocket first, so that no event of the flow can be missed.
    const ws = openSocket(bot);

    const hello = await waitForEvent((m) => (m.event === 'hello' ? m : undefined));
    report('ws_hello', hello !== undefined && hello.seq === 0 && /^[a-z0-9]{26}$/.test(hello.data?.connection_id || ''), hello || 'no hello');
    const connectionId = ws.connectionId;

    const pong = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), EVENT_TIMEOUT_MS);
        ws.ping((reply) => {
            clearTimeout(timer);
            resolve(reply);
        });
    });
    report('ws_ping_reply', pong !== undefined && pong.status === 'OK' && pong.data?.text === 'pong', pong || 'no reply');

    // -- Users
    let me;
    await step('get_me', async () => {
        me = await bot.getMe();
        return [/^[a-z0-9]{26}$/.test(me.id) && me.is_bot === true, { id: me.id, username: me.username, is_bot: me.is_bot }];
    });
    if (!me) {
        throw new Error('getMe failed; nothing else can run');
    }
    let humanUser;
    await step('get_user', async () => {
        humanUser = await bot.getUser(humanId);
        return [humanUser.id === humanId && typeof humanUser.username === 'string', { id: humanUser.id, username: humanUser.username }];
    });
    await step('get_user_by_username', async () => {
        const byName = await bot.getUserByUsername(humanUser.username);
        return [byName.id === humanId && byName.username === humanUser.username, { id: byName.id }];
    });

    // -- Direct channel (find-or-create)
    let dm;
    await step('create_direct_channel', async () => {
        dm = await bot.createDirectChannel([me.id, humanId]);
        const name = [me.id, humanId].sort().join('__');
        return [dm.type === 'D' && dm.name === name && dm.team_id === '', { id: dm.id, name: dm.name, type: dm.type }];
    });
    if (!dm) {
        throw new Error('createDirectChannel failed; nothing else can run');
    }
    await step('create_direct_channel_again', async () => {
        const again = await bot.createDirectChannel([humanId, me.id]);
        return [again.id === dm.id, { id: again.id }];
    });
    const since = Date.now() - 1;

    // -- Posts: a root with props, a threaded reply, a patch
    let root;
    await step('create_root_post', async () => {
        root = await bot.createPost({ channel_id: dm.id, message: 'session root from Client4', props: { mmthreads_session: 'js-1' } });
        return [
            /^[a-z0-9]{26}$/.test(root.id) && root.user_id === me.id && root.channel_id === dm.id && root.root_id === ''
                && root.message === 'session root from Client4' && root.props?.mmthreads_session === 'js-1'
                && root.props?.from_bot === 'true' && root.create_at > 0,
            { id: root.id, props: root.props, root_id: root.root_id },
        ];
    });
    if (!root) {
        throw new Error('createPost failed; nothing else can run');
    }
    let reply;
    await step('create_reply', async () => {
        reply = await bot.createPost({ channel_id: dm.id, message: 'first turn', root_id: root.id });
        return [reply.root_id === root.id && reply.channel_id === dm.id && reply.create_at >= root.create_at, { id: reply.id, root_id: reply.root_id }];
    });
    await step('patch_post', async () => {
        const patched = await bot.patchPost({ id: reply.id, message: 'first turn (edited)' });
        return [
            patched.id === reply.id && patched.message === 'first turn (edited)' && patched.edit_at > 0 && patched.root_id === root.id,
            { message: patched.message, edit_at: patched.edit_at },
        ];
    });

    // -- Reactions
    await step('add_reaction', async () => {
        const r = await bot.addReaction(me.id, root.id, 'white_check_mark');
        return [r.user_id === me.id && r.post_id === root.id && r.emoji_name === 'white_check_mark', r];
    });
    await step('get_reactions', async () => {
        const list = await bot.getReactionsForPost(root.id);
        const ok = Array.isArray(list) && list.some((r) => r.user_id === me.id && r.emoji_name === 'white_check_mark');
        return [ok, list];
    });

    // -- Files: upload (channel_id, client_ids, then files), attach to a reply, read back
    const content = 'hello from the fidelity suite\n';
    let fileInfo;
    await step('upload_file', async () => {
        const form = new FormData();
        form.append('channel_id', dm.id);
        form.append('client_ids', 'js-client-file-1');
        form.append('files', new Blob([content], { type: 'text/plain' }), 'notes.txt');
        const res = await bot.uploadFile(form);
        fileInfo = res.file_infos?.[0];
        const ok = res.file_infos?.length === 1 && fileInfo.name === 'notes.txt' && fileInfo.size === Buffer.byteLength(content)
            && fileInfo.extension === 'txt' && /^[a-z0-9]{26}$/.test(fileInfo.id)
            && Array.isArray(res.client_ids) && res.client_ids[0] === 'js-client-file-1';
        return [ok, res];
    });
    let filePost;
    await step('create_post_with_file', async () => {
        filePost = await bot.createPost({ channel_id: dm.id, message: 'see attachment', root_id: root.id, file_ids: [fileInfo.id] });
        return [filePost.file_ids?.length === 1 && filePost.file_ids[0] === fileInfo.id && filePost.root_id === root.id, { id: filePost.id, file_ids: filePost.file_ids, metadata: filePost.metadata }];
    });
    await step('get_file_infos_for_post', async () => {
        const infos = await bot.getFileInfosForPost(filePost.id);
        const ok = Array.isArray(infos) && infos.length === 1 && infos[0].id === fileInfo.id && infos[0].post_id === filePost.id;
        return [ok, infos];
    });
    await step('get_file', async () => {
        const res = await fetch(bot.getFileUrl(fileInfo.id), { headers: { Authorization: 'Bearer ' + botToken } });
        const body = await res.text();
        return [res.status === 200 && body === content, { status: res.status, content_type: res.headers.get('content-type'), length: body.length }];
    });

    // -- Thread
    await step('get_post_thread', async () => {
        const thread = await bot.getPostThread(root.id);
        const ids = sortedByCreateAt(thread);
        const expected = [root.id, reply.id, filePost.id];
        const editedSeen = thread.posts?.[reply.id]?.message === 'first turn (edited)';
        const ok = JSON.stringify(ids) === JSON.stringify(expected) && thread.order.length === 3 && editedSeen;
        return [ok, { order: thread.order, sorted: ids, expected }];
    });

    // -- The human writes in the DM
    let humanPost;
    await step('human_create_post', async () => {
        humanPost = await human.createPost({ channel_id: dm.id, message: 'hello bot' });
        return [humanPost.user_id === humanId && humanPost.channel_id === dm.id, { id: humanPost.id }];
    });

    // -- Delete a scratch root
    let scratch;
    await step('delete_post', async () => {
        scratch = await bot.createPost({ channel_id: dm.id, message: 'scratch, deleted below' });
        const res = await bot.deletePost(scratch.id);
        return [res?.status === 'OK', res];
    });

    // -- Catch-up after a gap
    let maxUpdateAt = 0;
    await step('get_posts_since', async () => {
        const list = await bot.getPostsSince(dm.id, since);
        const want = [root.id, reply.id, filePost.id, humanPost.id, scratch.id];
        const missing = want.filter((id) => !list.posts?.[id]);
        for (const p of Object.values(list.posts || {})) {
            maxUpdateAt = Math.max(maxUpdateAt, p.update_at);
        }
        const deleted = list.posts?.[scratch.id];
        const edited = list.posts?.[reply.id];
        const ok = missing.length === 0 && deleted?.delete_at > 0 && edited?.message === 'first turn (edited)';
        return [ok, { missing, order: list.order, scratch_delete_at: deleted?.delete_at }];
    });
    await step('get_posts_since_latest', async () => {
        const list = await bot.getPostsSince(dm.id, maxUpdateAt);
        const ids = Object.keys(list.posts || {});
        return [Array.isArray(list.order) && list.order.length === 0 && ids.length === 0, { since: maxUpdateAt, order: list.order, posts: ids }];
    });

    // -- The events all of this produced, on the bot's socket
    const posted = (check, post) => (post === undefined ? Promise.resolve(report(check, false, 'post was not created')) : waitForEvent(eventWith('posted', 'post', (p) => p.id === post.id)).then((found) => {
        const ok = found !== undefined && found.msg.broadcast?.channel_id === dm.id && found.msg.data.channel_type === 'D'
            && found.inner.channel_id === dm.id && found.inner.root_id === post.root_id && found.inner.message === post.message;
        report(check, ok, found ? { data: found.msg.data, broadcast: found.msg.broadcast, seq: found.msg.seq } : 'no event');
        return found;
    }));
    await posted('ws_posted_root', root);
    await posted('ws_posted_reply', reply);
    await posted('ws_posted_with_file', filePost);
    const fromHuman = await posted('ws_posted_human', humanPost);
    if (fromHuman) {
        const mentions = parseJsonString(fromHuman.msg.data.mentions);
        report('ws_posted_human_mentions_bot', Array.isArray(mentions) && mentions.length === 1 && mentions[0] === me.id,
            { mentions: fromHuman.msg.data.mentions, sender_name: fromHuman.msg.data.sender_name });
        report('ws_posted_human_sender', fromHuman.msg.data.sender_name === '@' + humanUser.username
            && fromHuman.inner.user_id === humanId, { sender_name: fromHuman.msg.data.sender_name });
    }
    const edited = await waitForEvent(eventWith('post_edited', 'post', (p) => p.id === reply?.id && p.message === 'first turn (edited)'));
    report('ws_post_edited', edited !== undefined && edited.inner.edit_at > 0 && edited.msg.broadcast?.channel_id === dm.id,
        edited ? { data: edited.msg.data, seq: edited.msg.seq } : 'no event');
    const reacted = await waitForEvent(eventWith('reaction_added', 'reaction', (r) => r.post_id === root.id && r.emoji_name === 'white_check_mark'));
    report('ws_reaction_added', reacted !== undefined && reacted.inner.user_id === me.id && reacted.msg.broadcast?.channel_id === dm.id,
        reacted ? { data: reacted.msg.data, seq: reacted.msg.seq } : 'no event');
    const deleted = await waitForEvent(eventWith('post_deleted', 'post', (p) => p.id === scratch?.id));
    report('ws_post_deleted', deleted !== undefined, deleted ? { data: deleted.msg.data, seq: deleted.msg.seq } : 'no event');

    // Every event arrived in order on one connection: WebSocketClient closes the socket (4001) on
    // any seq gap and would then reconnect, so no close and an unchanged connection id prove it.
    const seqs = events.map((m) => m.seq);
    const contiguous = seqs.every((s, i) => s === i);
    report('ws_single_connection_contiguous_seq', contiguous && closes.length === 0 && missed.length === 0 && ws.connectionId === connectionId,
        { seqs, closes, missed: missed.length, events: events.map((m) => m.event) });

    // -- Errors a bot meets, as Client4 surfaces them (ClientError with the server's id)
    const expectError = (check, status, ids, fn) => step(check, async () => {
        try {
            const unexpected = await fn();
            return [false, { unexpected_success: unexpected }];
        } catch (err) {
            const ok = err instanceof ClientError && err.status_code === status && ids.includes(err.server_error_id);
            return [ok, describeError(err)];
        }
    });
    await expectError('error_unknown_user', 404, ['app.user.missing_account.const'], () => bot.getUser('x'.repeat(26)));
    await expectError('error_reply_to_reply', 400, ['api.post.create_post.root_id.app_error'],
        () => bot.createPost({ channel_id: dm.id, message: 'nested', root_id: reply.id }));
    await expectError('error_message_too_long', 400, ['model.post.is_valid.message_length.app_error'],
        () => bot.createPost({ channel_id: dm.id, message: 'x'.repeat(16384), root_id: root.id }));
    await expectError('error_unknown_emoji', 404, ['app.emoji.get_by_name.no_result'],
        () => bot.addReaction(me.id, root.id, 'stop_sign'));
    await expectError('error_no_session', 401, ['api.context.session_expired.app_error'], () => newClient('').getMe());
    // The limit is in runes (code points): 16383 astral characters are 32766 UTF-16 units.
    await step('message_limit_in_runes', async () => {
        const longest = await bot.createPost({ channel_id: dm.id, message: '\u{1F600}'.repeat(16383) });
        return [[...longest.message].length === 16383, { runes: [...longest.message].length, id: longest.id }];
    });

    report('created', true, {
        bot_id: me.id,
        channel_id: dm.id,
        root_id: root.id,
        reply_id: reply?.id,
        file_post_id: filePost?.id,
        file_id: fileInfo?.id,
        human_post_id: humanPost?.id,
        deleted_post_id: scratch?.id,
    });
    ws.close();
}

// Socket recovery: a dropped socket resumes losslessly on the same connection; after a server
// restart the client gets a new connection id, fires its missed-message listeners and catches
// up over REST.
async function resume() {
    const bot = newClient(botToken);
    const ws = openSocket(bot);
    const hello = await waitForEvent((m) => (m.event === 'hello' ? m : undefined));
    const firstConnection = hello?.data?.connection_id;
    report('ws_hello', hello !== undefined && hello.seq === 0, hello || 'no hello');
    const me = await bot.getMe();
    const dm = await bot.createDirectChannel([me.id, humanId]);
    let highWater = Date.now();

    // Phase 1: the server drops the socket and the human posts twice while it is gone.
    report('resume_ready', true, { channel_id: dm.id, connection_id: firstConnection });
    const away = [];
    for (const message of ['while away 1', 'while away 2']) {
        away.push(await waitForEvent(eventWith('posted', 'post', (p) => p.message === message), 8000));
    }
    report('resume_events_delivered', away.every(Boolean) && away[0].msg.seq < away[1].msg.seq,
        away.map((found) => (found ? { seq: found.msg.seq, post: found.inner.id } : null)));
    for (const found of away) {
        highWater = Math.max(highWater, found ? found.inner.update_at : 0);
    }
    const hellos = events.filter((m) => m.event === 'hello').length;
    report('resume_same_connection', reconnects.length >= 1 && missed.length === 0 && hellos === 1
        && ws.connectionId === firstConnection,
    { reconnects: reconnects.length, missed: missed.length, hellos, connection_id: ws.connectionId });
    const seqs = events.map((m) => m.seq);
    // A gap would have made the client close with 4001 and reconnect once more.
    report('resume_seq_contiguous', seqs.every((seq, i) => seq === i) && closes.length === 1,
        { seqs, closes });

    // Phase 2: the server restarts, forgetting connections; the human posts meanwhile.
    const before = events.length;
    report('restart_ready', true, { connection_id: ws.connectionId });
    const secondHello = await waitForEvent((m) => (m.event === 'hello' && m.data?.connection_id !== firstConnection ? m : undefined), 10000);
    report('restart_new_connection', secondHello !== undefined && secondHello.seq === 0 && missed.length === 1
        && ws.connectionId === secondHello.data.connection_id,
    { hello: secondHello || 'no second hello', missed: missed.length });
    const sawLive = events.slice(before).some((m) => m.event === 'posted' && parseJsonString(m.data?.post)?.message === 'while restarting');
    await step('restart_rest_catch_up', async () => {
        const list = await bot.getPostsSince(dm.id, highWater);
        const found = Object.values(list.posts || {}).find((p) => p.message === 'while restarting');
        return [found !== undefined && found.user_id === humanId, { found: found?.id, seen_live: sawLive, order: list.order }];
    });
    report('created', true, { bot_id: me.id, channel_id: dm.id });
    ws.close();
}

const overall = setTimeout(() => {
    report('overall_timeout', false, `flow did not finish within ${OVERALL_TIMEOUT_MS} ms`);
    process.exit(2);
}, OVERALL_TIMEOUT_MS);

(resumeMode ? resume() : main()).then(
    () => {
        clearTimeout(overall);
        process.exit(failures === 0 ? 0 : 1);
    },
    (err) => {
        clearTimeout(overall);
        report('crash', false, { error: describeError(err), stack: err && err.stack });
        process.exit(2);
    },
);
