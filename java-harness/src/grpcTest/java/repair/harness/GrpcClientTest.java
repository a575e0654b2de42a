package repair.harness;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.google.protobuf.Message;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollIoHandler;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.stub.ClientCalls;
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Iterator;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.After;
import org.junit.Test;
import repair.v1.AgentOuterClass.ApplyRequest;
import repair.v1.AgentOuterClass.Event;
import repair.v1.AgentOuterClass.EventsRequest;
import repair.v1.AgentOuterClass.Fault;
import repair.v1.AgentOuterClass.FaultsReply;
import repair.v1.AgentOuterClass.FaultsRequest;
import repair.v1.AgentOuterClass.Patch;
import repair.v1.AgentOuterClass.PatchesReply;
import repair.v1.AgentOuterClass.PatchesRequest;
import repair.v1.AgentOuterClass.RollbackRequest;
import repair.v1.AgentOuterClass.StatusReply;
import repair.v1.AgentOuterClass.StatusRequest;

/**
 * The control plane from grpc-java, a client the agent was not written with: over the agent's
 * Unix socket (HTTP/2 on netty's epoll domain sockets), the demo service is inspected, repaired,
 * watched through a server stream and rolled back; a bad spec is refused with a gRPC status that
 * names the field. Stubs are not generated (no grpc plugin offline): each call is a
 * MethodDescriptor over the message classes protoc generates from proto/.
 */
public class GrpcClientTest {
    private Process service;
    private ManagedChannel channel;
    private EventLoopGroup loop;

    @After
    public void stopAll() throws Exception {
        if (channel != null) {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
        if (loop != null) {
            loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
        if (service != null) {
            service.destroyForcibly();
            service.waitFor(10, TimeUnit.SECONDS);
        }
    }

    static <T extends Message> MethodDescriptor.Marshaller<T> marshaller(T prototype) {
        return new MethodDescriptor.Marshaller<T>() {
            @Override
            public InputStream stream(T value) {
                return new ByteArrayInputStream(value.toByteArray());
            }

            @Override
            @SuppressWarnings("unchecked")
            public T parse(InputStream in) {
                try {
                    return (T) prototype.getParserForType().parseFrom(in);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        };
    }

    static <Q extends Message, R extends Message> MethodDescriptor<Q, R> method(
            String name, MethodDescriptor.MethodType type, Q request, R reply) {
        return MethodDescriptor.<Q, R>newBuilder()
                .setType(type)
                .setFullMethodName(MethodDescriptor.generateFullMethodName("repair.v1.Agent", name))
                .setRequestMarshaller(marshaller(request))
                .setResponseMarshaller(marshaller(reply))
                .build();
    }

    static final MethodDescriptor<StatusRequest, StatusReply> STATUS = method(
            "Status", MethodDescriptor.MethodType.UNARY, StatusRequest.getDefaultInstance(), StatusReply.getDefaultInstance());
    static final MethodDescriptor<FaultsRequest, FaultsReply> FAULTS = method(
            "Faults", MethodDescriptor.MethodType.UNARY, FaultsRequest.getDefaultInstance(), FaultsReply.getDefaultInstance());
    static final MethodDescriptor<ApplyRequest, Patch> APPLY = method(
            "Apply", MethodDescriptor.MethodType.UNARY, ApplyRequest.getDefaultInstance(), Patch.getDefaultInstance());
    static final MethodDescriptor<PatchesRequest, PatchesReply> PATCHES = method(
            "Patches", MethodDescriptor.MethodType.UNARY, PatchesRequest.getDefaultInstance(), PatchesReply.getDefaultInstance());
    static final MethodDescriptor<RollbackRequest, PatchesReply> ROLLBACK = method(
            "Rollback", MethodDescriptor.MethodType.UNARY, RollbackRequest.getDefaultInstance(), PatchesReply.getDefaultInstance());
    static final MethodDescriptor<EventsRequest, Event> WATCH_EVENTS = method(
            "WatchEvents", MethodDescriptor.MethodType.SERVER_STREAMING, EventsRequest.getDefaultInstance(), Event.getDefaultInstance());

    private <Q, R> R call(MethodDescriptor<Q, R> m, Q request) {
        return ClientCalls.blockingUnaryCall(channel, m, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), request);
    }

    /** The agent's socket, as it says on stderr when it listens. */
    private static String socketOf(File stderr) throws Exception {
        long deadline = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < deadline) {
            for (String line : Files.readAllLines(stderr.toPath(), StandardCharsets.UTF_8)) {
                int at = line.indexOf("control plane listening on unix:");
                if (at >= 0) {
                    return line.substring(at + "control plane listening on unix:".length()).trim();
                }
            }
            Thread.sleep(50);
        }
        fail("the agent did not say where it listens:\n" + new String(Files.readAllBytes(stderr.toPath()), StandardCharsets.UTF_8));
        return null;
    }

    @Test
    public void aGrpcJavaClientRepairsTheServiceOverTheUnixSocket() throws Exception {
        File state = Files.createTempDirectory("repair-state").toFile();
        File stderr = File.createTempFile("repair-grpc", ".log");
        stderr.deleteOnExit();
        service = new ProcessBuilder(
                        System.getProperty("java.home") + "/bin/java",
                        "-agentpath:" + LivePatchTest.bin("librepair.so").getCanonicalPath() + "=state=" + state,
                        "-cp", System.getProperty("java.class.path"), "repair.demo.ShopService")
                .redirectError(stderr)
                .start();
        String line = new BufferedReader(new InputStreamReader(service.getInputStream(), StandardCharsets.UTF_8)).readLine();
        assertTrue("service did not start: " + line, line != null && line.startsWith("LISTENING port="));
        int port = Integer.parseInt(line.substring("LISTENING port=".length()));

        loop = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        channel = NettyChannelBuilder.forAddress(new DomainSocketAddress(socketOf(stderr)))
                .eventLoopGroup(loop)
                .channelType(EpollDomainSocketChannel.class)
                // grpc-java's default authority for a socket is its path, which HTTP/2 servers
                // (the agent's among them) refuse as malformed; other languages send "localhost".
                .overrideAuthority("localhost")
                .usePlaintext()
                .build();

        StatusReply status = call(STATUS, StatusRequest.getDefaultInstance());
        assertEquals(service.pid(), status.getPid());
        assertEquals("bytecode-probes", status.getFaultCapture());
        assertTrue(status.toString(), status.getClassesLoaded() > 100);

        for (int i = 0; i < 3; i++) {
            assertTrue(LivePatchTest.get(port, "/price?item=durian", "GET").startsWith("500"));
        }
        Fault npe = call(FAULTS, FaultsRequest.getDefaultInstance()).getFaultsList().stream()
                .filter(f -> f.getException().equals("java.lang.NullPointerException"))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no NullPointerException among the faults"));
        assertEquals("repair.demo.PriceService", npe.getSite().getClassName());
        assertEquals("price", npe.getSite().getMethod());
        assertTrue(npe.toString(), npe.getCount() >= 3);
        assertTrue("bytecode capture cannot tell caught from uncaught", !npe.hasCaught());

        // Events, streamed from the server as they happen.
        BlockingQueue<Event> events = new LinkedBlockingQueue<>();
        Iterator<Event> stream = ClientCalls.blockingServerStreamingCall(
                channel, WATCH_EVENTS, CallOptions.DEFAULT, EventsRequest.getDefaultInstance());
        Thread follower = new Thread(() -> {
            try {
                stream.forEachRemaining(events::add);
            } catch (StatusRuntimeException ended) {
                // The channel was shut down.
            }
        });
        follower.setDaemon(true);
        follower.start();

        String spec = new String(Files.readAllBytes(new File("../demo/price-npe.yaml").toPath()), StandardCharsets.UTF_8);
        Patch applied = call(APPLY, ApplyRequest.newBuilder()
                .setSpecYaml(spec).setSource("price-npe.yaml").setWho("java-client").build());
        assertEquals("price-npe", applied.getId());
        assertEquals("operator:java-client", applied.getWho());
        assertEquals("200 0", LivePatchTest.get(port, "/price?item=durian", "GET"));
        assertEquals(1, call(PATCHES, PatchesRequest.getDefaultInstance()).getPatchesCount());

        Event event = events.poll(10, TimeUnit.SECONDS);
        while (event != null && !event.getKind().equals("applied")) {
            event = events.poll(10, TimeUnit.SECONDS);
        }
        assertTrue("no applied event on the stream", event != null);
        assertEquals("price-npe", event.getPatch());

        // Bad input: one clear status naming the input and the cause; nothing changes.
        try {
            call(APPLY, ApplyRequest.newBuilder()
                    .setSpecYaml(spec.replace("id: price-npe", "id: bad").replace("fallback: { value: 0 }", "fallback: sometimes"))
                    .setSource("bad.yaml").setWho("java-client").build());
            fail("a bad spec was applied");
        } catch (StatusRuntimeException e) {
            assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
            assertTrue(e.getStatus().toString(), e.getStatus().getDescription().contains("bad.yaml"));
            assertTrue(e.getStatus().toString(), e.getStatus().getDescription().contains("fallback"));
        }
        try {
            call(APPLY, ApplyRequest.newBuilder().setSpecYaml(spec).setSource("again.yaml").setWho("java-client").build());
            fail("the same patch was applied twice");
        } catch (StatusRuntimeException e) {
            assertEquals(Status.Code.ALREADY_EXISTS, e.getStatus().getCode());
        }
        assertEquals(1, call(PATCHES, PatchesRequest.getDefaultInstance()).getPatchesCount());

        PatchesReply gone = call(ROLLBACK, RollbackRequest.newBuilder().setId("price-npe").setWho("java-client").build());
        assertEquals("price-npe", gone.getPatches(0).getId());
        assertTrue(LivePatchTest.get(port, "/price?item=durian", "GET").startsWith("500"));
        assertEquals(0, call(PATCHES, PatchesRequest.getDefaultInstance()).getPatchesCount());
    }
}
