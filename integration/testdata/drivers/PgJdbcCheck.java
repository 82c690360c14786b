// What a Java app does through pgrotate in transaction mode, with the
// PostgreSQL JDBC driver: run by integration/drivers_test.go as
//   java -cp postgresql.jar PgJdbcCheck.java <jdbc url> <owner role> <threads>
// Every thread is a client of its own; there are more of them than server
// connections. prepareThreshold=1 makes the driver use named server-side
// statements (S_1, S_2, …) from a statement's first run, as it does by
// default from the fifth. Prints "ok" and exits 0 when every check held.
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;

public class PgJdbcCheck {
    public static void main(String[] args) throws Exception {
        String url = args[0], owner = args[1];
        int threads = Integer.parseInt(args[2]);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        List<Future<?>> done = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            final int id = i;
            done.add(pool.submit(() -> { client(url, owner, id); return null; }));
        }
        int failed = 0;
        for (Future<?> f : done) {
            try { f.get(); } catch (ExecutionException e) { failed++; System.out.println("client failed: " + e.getCause()); }
        }
        pool.shutdown();
        if (failed > 0) { System.out.println(failed + " clients failed"); System.exit(1); }
        System.out.println("ok");
    }

    static void check(boolean ok, String what) throws Exception { if (!ok) throw new Exception(what); }

    static void client(String url, String owner, int id) throws Exception {
        Properties p = new Properties();
        p.setProperty("prepareThreshold", "1");
        // A setting PostgreSQL does not report, from the startup options.
        String timeout = (1001 + id) + "ms"; // not a whole second, which PostgreSQL shows as "1s"
        p.setProperty("options", "-c statement_timeout=" + timeout);
        try (Connection c = DriverManager.getConnection(url, p)) {
            // Each client keeps its own TimeZone from one server connection
            // to the next. (The driver sends the JVM's zone at startup.)
            String zone = id % 2 == 0 ? "Asia/Tokyo" : "America/New_York";
            try (Statement st = c.createStatement()) { st.execute("SET TimeZone TO '" + zone + "'"); }
            // A named statement run over and over, each run its own transaction.
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT ?::int + 1, current_user, current_setting('TimeZone'), current_setting('statement_timeout')")) {
                for (int k = 0; k < 100; k++) {
                    ps.setInt(1, k);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "no row");
                        check(rs.getInt(1) == k + 1, "wrong sum " + rs.getInt(1));
                        check(rs.getString(2).equals(owner), "acting as " + rs.getString(2));
                        check(rs.getString(3).equals(zone), "TimeZone " + rs.getString(3) + ", want " + zone);
                        check(rs.getString(4).equals(timeout), "statement_timeout " + rs.getString(4) + ", want " + timeout);
                    }
                }
            }
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.execute("CREATE TEMP TABLE jdbc_" + id + " (a int PRIMARY KEY, b text) ON COMMIT DROP");
            }
            // A batch: many Bind/Execute pairs before one Sync.
            try (PreparedStatement ins = c.prepareStatement("INSERT INTO jdbc_" + id + " VALUES (?, ?)")) {
                for (int j = 0; j < 100; j++) { ins.setInt(1, j); ins.setString(2, "v" + j); ins.addBatch(); }
                check(ins.executeBatch().length == 100, "batch");
            }
            // A portal read in pieces (Execute with a row limit, PortalSuspended).
            try (PreparedStatement q = c.prepareStatement("SELECT a FROM jdbc_" + id + " ORDER BY a")) {
                q.setFetchSize(7);
                int rows = 0, sum = 0;
                try (ResultSet rs = q.executeQuery()) { while (rs.next()) { rows++; sum += rs.getInt(1); } }
                check(rows == 100 && sum == 4950, "portal read " + rows + " rows, sum " + sum);
            }
            // An error ends the transaction; the connection goes on.
            try (Statement st = c.createStatement()) {
                try { st.execute("SELECT 1/0"); check(false, "no division error"); }
                catch (SQLException e) { check("22012".equals(e.getSQLState()), "division: " + e); }
            }
            c.rollback();
            c.setAutoCommit(true);
            // Changing the role is refused, also as a named statement with a
            // parameter, and leaves nothing behind for the next client.
            for (int k = 0; k < 2; k++) {
                try (PreparedStatement ps = c.prepareStatement("SELECT set_config('role', ?, false)")) {
                    ps.setString(1, "none");
                    try { ps.executeQuery(); check(false, "set_config('role') not refused"); }
                    catch (SQLException e) { check("42501".equals(e.getSQLState()), "set_config('role'): " + e); }
                }
                try (Statement st = c.createStatement()) {
                    try { st.execute("SET ROLE NONE"); check(false, "SET ROLE not refused"); }
                    catch (SQLException e) { check("42501".equals(e.getSQLState()), "SET ROLE: " + e); }
                }
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT current_user")) {
                check(rs.next() && rs.getString(1).equals(owner), "acting as someone else at the end");
            }
        }
    }
}
