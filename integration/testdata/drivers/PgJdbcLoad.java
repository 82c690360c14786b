// A Java app's steady load through pgrotate, for the rotation tests: run by
// integration/drivers_test.go as
//   java -cp postgresql.jar PgJdbcLoad.java <jdbc url> <owner role> <clients>
// Each client is a JDBC connection of its own, kept open for the whole run,
// running transactions (autocommit off) of named server-side statements
// (prepareThreshold=1). It prints "ready" once every client has committed a
// transaction, runs until its stdin closes, then prints "ok <transactions>"
// and exits 0 if none failed.
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

public class PgJdbcLoad {
    public static void main(String[] args) throws Exception {
        String url = args[0], owner = args[1];
        int clients = Integer.parseInt(args[2]);
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong committed = new AtomicLong();
        CountDownLatch ready = new CountDownLatch(clients);
        List<String> failures = Collections.synchronizedList(new ArrayList<>());
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            final int id = i;
            Thread t = new Thread(() -> {
                try { committed.addAndGet(client(url, owner, id, stop, ready)); }
                catch (Exception e) { failures.add("client " + id + ": " + e); while (ready.getCount() > 0) ready.countDown(); }
            });
            t.start();
            threads.add(t);
        }
        ready.await();
        if (failures.isEmpty()) { // else a client failed before the load was ready
            System.out.println("ready");
            System.out.flush();
            System.in.readAllBytes();
        }
        stop.set(true);
        for (Thread t : threads) t.join();
        for (String f : failures) System.out.println(f);
        if (!failures.isEmpty()) System.exit(1);
        System.out.println("ok " + committed.get());
    }

    static long client(String url, String owner, int id, AtomicBoolean stop, CountDownLatch ready) throws Exception {
        Properties p = new Properties();
        p.setProperty("prepareThreshold", "1");
        long n = 0;
        try (Connection c = DriverManager.getConnection(url, p);
             PreparedStatement bump = c.prepareStatement(
                 "INSERT INTO drv_counter VALUES (?, 1) ON CONFLICT (client) DO UPDATE SET n = drv_counter.n + 1");
             PreparedStatement who = c.prepareStatement("SELECT current_user, ?::int")) {
            c.setAutoCommit(false);
            while (!stop.get()) {
                bump.setInt(1, 2000 + id);
                bump.executeUpdate();
                who.setInt(1, (int) n);
                try (ResultSet rs = who.executeQuery()) {
                    rs.next();
                    if (!rs.getString(1).equals(owner)) throw new Exception("acting as " + rs.getString(1));
                }
                c.commit();
                if (++n == 1) ready.countDown();
            }
        }
        return n;
    }
}
