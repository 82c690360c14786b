# What a Rails app's models do through pgrotate in transaction mode, with
# ActiveRecord and the pg gem: run by integration/drivers_test.go as
#   ruby activerecord_check.rb <host> <port> <database> <user> <password> <owner role> <threads>
# Each thread holds a connection of ActiveRecord's pool; there are more of
# them than server connections. prepared_statements: true (the default)
# prepares every query as a named server-side statement (a1, a2, ...), which
# is what breaks behind a pooler that does not carry them. The table
# drv_books exists already. Prints "ok" and exits 0 when every check held.
require "active_record"

host, port, database, user, password, owner, threads = ARGV
ActiveRecord::Base.establish_connection(adapter: "postgresql", host: host, port: Integer(port),
  database: database, username: user, password: password, pool: Integer(threads),
  prepared_statements: true)

class DrvBook < ActiveRecord::Base; end

failures = Queue.new
Integer(threads).times.map do |i|
  Thread.new do
    ActiveRecord::Base.connection_pool.with_connection do |c|
      40.times do |k|
        title = "t#{i}-#{k}"
        book = DrvBook.create!(title: title, copies: k)
        raise "read back #{DrvBook.find(book.id).title}" unless DrvBook.find(book.id).title == title
        DrvBook.where(copies: k).where("title LIKE ?", "t#{i}-%").update_all(copies: k + 1)
        # A transaction with a row lock; every tenth one rolled back.
        DrvBook.transaction do
          DrvBook.where(id: book.id).lock.first.update!(copies: 0)
          raise ActiveRecord::Rollback if k % 10 == 0
        end
        copies = DrvBook.find(book.id).copies
        raise "copies #{copies} after the transaction" unless copies == (k % 10 == 0 ? k + 1 : 0)
        # An error inside a transaction; the connection goes on.
        begin
          DrvBook.transaction { c.execute("SELECT 1/0") }
          raise "no division error"
        rescue ActiveRecord::StatementInvalid => e
          raise unless e.cause.is_a?(PG::DivisionByZero)
        end
      end
      # Changing the role is refused, and the session still acts as the owner.
      begin
        c.execute("SET ROLE NONE")
        raise "SET ROLE not refused"
      rescue ActiveRecord::StatementInvalid => e
        raise unless e.cause.is_a?(PG::InsufficientPrivilege)
      end
      who = c.select_value("SELECT current_user")
      raise "acting as #{who}" unless who == owner
    end
  rescue => e
    failures << "thread #{i}: #{e.class}: #{e.message.lines.first}"
  end
end.each(&:join)

count = DrvBook.count
failures << "#{count} books, want #{Integer(threads) * 40}" unless count == Integer(threads) * 40
until failures.empty?
  puts failures.pop
  failed = true
end
exit 1 if failed
puts "ok"
