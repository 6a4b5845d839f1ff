#!/usr/bin/perl
# Verify the DKIM signatures of the message on standard input with Mail::DKIM
# (Debian libmail-dkim-perl), asking the DNS server at ADDRESS PORT for keys.
# Prints one line per signature: ALGORITHM RESULT (pass, fail, invalid, ...).
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

my ($address, $port) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(nameservers => [$address], port => $port, recurse => 0,
                                                  udp_timeout => 5, tcp_timeout => 5));
my $verifier = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\r\n/;
    $verifier->PRINT($line);
}
$verifier->CLOSE();
foreach my $signature ($verifier->signatures) {
    print $signature->algorithm, " ", $signature->result_detail, "\n";
}
