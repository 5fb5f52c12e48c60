"""Writes N order rows (about 100 bytes each) and 100,000 customers as CSV,
with a known defect mix: of every 1,000 orders, 5 have a non-numeric amount,
5 a negative amount, 5 a bad status, 5 a bad e-mail, 5 a missing order id,
5 an unknown customer, 5 a quantity out of range, and 10 share an order id
with another row; 3 of them have two defects (bad status and bad e-mail).

Usage: python3 generate.py N OUT_DIR
"""
import os
import sys

n = int(sys.argv[1])
out = sys.argv[2]
os.makedirs(f"{out}/orders", exist_ok=True)
with open(f"{out}/customers.csv", "w") as f:
    f.write("customer_id,name,country\n")
    f.writelines(f"{i},customer {i},{('GB','FR','DE','ES','IT')[i % 5]}\n" for i in range(1, 100_001))

statuses = ("new", "paid", "shipped", "cancelled")
currencies = ("EUR", "USD", "GBP")
channels = ("web", "store", "phone")
with open(f"{out}/orders/orders.csv", "w", buffering=1 << 22) as f:
    f.write("order_id,customer_id,day,amount,status,email,currency,quantity,channel\n")
    lines = []
    for i in range(n):
        k = i % 1000
        order_id = str(i + 1)
        customer = (i * 7919) % 100_000 + 1
        amount = f"{(i % 50_000) / 100 + 1:.2f}"
        status = statuses[i % 4]
        email = f"user{customer}@example.com"
        quantity = (i % 20) + 1
        if k == 1:
            amount = "n/a"
        elif k == 2:
            amount = "-3.50"
        elif k == 3:
            status = "lost"
        elif k == 4:
            email = "not-an-email"
        elif k == 5:
            order_id = ""
        elif k == 6:
            customer = 999_999_999
        elif k == 7:
            quantity = 5000
        elif k in (8, 9):
            status, email = "lost", "broken@"
        elif 10 <= k < 20 and i >= 1000:
            order_id = str(i + 1 - 1000)  # the same id as a row 1,000 rows earlier
        lines.append(f"{order_id},{customer},2026-01-{(i % 28) + 1:02d},{amount},{status},{email},{currencies[i % 3]},{quantity},{channels[i % 3]}\n")
        if len(lines) == 100_000:
            f.writelines(lines)
            lines = []
    f.writelines(lines)
