module example.com/billing
